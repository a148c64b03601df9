"""What a refresh that was killed leaves behind, and how the next one knows it is nobody's.

A refresh spills its records and facts into folders of its own (records-<run id>, facts-<run id>: 5.4 GB at
20M residents) and removes them when it ends, however it ends, unless the process is killed (the OOM killer,
a reboot, kill -9). Each refresh therefore holds an advisory lock on a file named after its run id from
before it makes anything until it has removed everything; the kernel drops the lock when the process dies,
so the next refresh removes every run folder whose lock nobody holds. The folder may be shared by refreshes
of other databases (a configured DuckDB temp directory): a folder of a refresh still running is never touched.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from pathlib import Path

_LOCK = ".run-{}.lock"
_RUN_FOLDER = re.compile(r"^(?:records|facts)-(?P<run>.+)$")


class RunClaim:
    """Holds the run's lock file in folder until released."""

    def __init__(self, folder: Path, run_id: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / _LOCK.format(run_id)
        # Locked before it has its name: a sweeping refresh that finds the name always finds it locked.
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".claiming-")
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(temp, self.path)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def remove_abandoned(folder: Path) -> list[str]:
    """Removes the run folders (and lock files) of refreshes that are no longer running; returns their names."""
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        found = _RUN_FOLDER.match(entry.name)
        if found and entry.is_dir() and not _held(folder / _LOCK.format(found["run"])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    # the locks of runs gone, and of claims killed between making their file and naming it
    for lock in [*folder.glob(_LOCK.format("*")), *folder.glob(".claiming-*")]:
        if not _held(lock):
            lock.unlink(missing_ok=True)
    return removed
