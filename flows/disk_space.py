"""What data staff are told when a refresh runs out of disk space.

A full disk is the one failure a two-hourly refresh of a large city meets without any fault in its inputs:
at 20M residents an output is about 15 GB (its decisions, matches/, 13 GB: a refresh that only added records
writes its own part of them, the rest linked from the last output), written beside the last one before it
takes its place, and the state grows with every batch of records. The refresh then stops where it was and
leaves the last output as it was (flows.publish), but Python's "[Errno 28] No space left on device" and a
traceback say neither that nor how much room is wanted. The message says which disks, how much is free on
each, how large the last output is, and that it was left in place. It names folders, never a file: a
book's file name carries a grid worker's name.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left; over a quota
# How DuckDB says it (an IOException with the system's message, no errno) when its file or temp folder fills.
_FULL_TEXT = os.strerror(errno.ENOSPC)
_OPENING = "gridsweep: the disk is full"  # how disk_full_message begins, and how tell finds it again


def is_disk_full(exc: BaseException) -> bool:
    """Whether exc, or an exception it was raised from or during, is a full disk or an exhausted quota."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL or _FULL_TEXT in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def tree_bytes(folder: Path) -> int:
    """The space the files under folder take on disk, a file with several links counted once."""
    total, inodes = 0, set()
    for where, _, names in os.walk(folder):
        for name in names:
            try:
                info = os.lstat(os.path.join(where, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in inodes:
                inodes.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _free(folder: Path) -> str:
    """The free space of the disk folder is on (its nearest existing parent's)."""
    place = folder
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        return _size(shutil.disk_usage(place).free)
    except OSError:
        return "unknown"


def tell(exc: BaseException, out: Path, state: Path) -> str:
    """disk_full_message, made once: kept on exc as a note, where the command line finds it again after the
    flow has logged it (the output's files are walked to measure it: 143,000 of them at 20M)."""
    said = next((note for note in getattr(exc, "__notes__", ()) if note.startswith(_OPENING)), None)
    if said is None:
        said = disk_full_message(out, state)
        exc.add_note(said)
    return said


def disk_full_message(out: Path, state: Path) -> str:
    """The lines printed for a refresh stopped by a full disk: out is the output folder, state the state's."""
    out, state = Path(out).resolve(), Path(state).resolve()
    last = f"the last output in {out} ({_size(tree_bytes(out))}) is unchanged" if out.is_dir() else (
        f"no output was written to {out}")
    places = {out.parent: "output", state: "state"}
    disks = "; ".join(f"{what} disk ({folder}): {_free(folder)} free" for folder, what in places.items())
    return (f"{_OPENING}: the refresh stopped and {last}.\n"
            f"gridsweep: {disks}.\n"
            "gridsweep: a refresh writes its outputs beside the last one before it takes its place: free at least "
            "as much space as the last output takes (or move the output or state to a larger disk) and run "
            "again; what was read and linked is kept, so the next run goes on from there.")
