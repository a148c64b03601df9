"""The state's files a refresh will read, asked of the disk before it reads them.

Two hours after the last refresh the kernel's page cache holds little of the state (23 GB at 20M residents:
the database, the kept decisions and rulings, the sources' facts), and the link and the rules then wait for
the disk in one read after another. Two-hour batches at 20M with the page cache emptied first
(`bench/next_batch.py --cold`) took 111.6-116.6 s, against 94.8 s minutes after the refresh before; with
these files asked for, 94.7 and 95.1 s (bench/HISTORY.md, fifty-fifth session).

- What: the files the link and the rules read, in the order they first read them (state_reads), listed when
  the refresh starts, up to half the memory then available (more would push out of the cache what the
  refresh has itself just read).
- When: once the first record source is in, when the link's read of the roster begins too. Asked for from
  the refresh's start they took the disk from the check that a grown test export still begins with the bytes
  last read (8.1-9.1 s against 3.2-3.5), and the flow gained half as much (103.0 and 109.1 s).
- How: posix_fadvise WILLNEED, a piece at a time (ASK_BYTES): the kernel reads them into its cache and
  nothing is copied into this process. The kernel reads at most its read-ahead window (8 MiB here) of what
  one call asks for, so a whole file asked for at once was only its first 8 MiB (11 GB "asked" in 0.5 s, no
  gain). The thread's reads are in the idle class, so a read the refresh waits for goes first.

Advice only: a file gone or unreadable is passed over, and the refresh reads what it reads either way.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from flows import state_layout as layout
from flows.history_files import CALL_LISTS
from flows.loaded_sources import FACTS
from transforms.contract import ROSTER, TESTS, VACCINATIONS

FACT_PARTS = f"{FACTS}-*.parquet"  # a source's facts among its kept parts (flows.loaded_sources)
# Asked for a piece at a time, each within the smallest read-ahead window a disk is likely to have (the kernel
# reads at most the larger of read_ahead_kb and max_sectors_kb a call). Each call returns once the disk has
# its reads queued: 3 GiB took 1.1 s to ask for in pieces of 512 KiB or 2 MiB, then 0.6 s to read from the cache.
ASK_BYTES = 512 * 1024


def state_reads(state: Path, database: Path) -> list[Path]:
    """The state's files a refresh reads after loading its sources, in the order it first reads them: the
    roster's facts (the link's roster read, once the tests are in), the database (the records' keys, the
    households), the kept decisions, the last call list and the kept rulings, the tests' and vaccinations'
    facts (the rules' evidence), the unregistered records' places and facts and the roster's derived tables (the
    follow-up). The records' linking rows are not among them: a two-hour refresh links the new ones, just
    written."""
    sources = state / layout.LOADED_SOURCES
    groups: list[Iterable[Path]] = [
        sorted((sources / ROSTER.name).glob(FACT_PARTS)),
        [database],
        sorted((state / layout.KEPT_LINKS).glob("*.parquet")),
        sorted((state / CALL_LISTS).glob("*.parquet"))[-1:],
        sorted((state / layout.KEPT_RULES).glob("*/*.parquet")),
        sorted((sources / TESTS.name).glob(FACT_PARTS)),
        sorted((sources / VACCINATIONS.name).glob(FACT_PARTS)),
        sorted((state / layout.UNREGISTERED_PLACES).glob("*.parquet")),
        sorted((state / layout.LONE_FACTS).glob("*.parquet")),
        sorted(p for p in (state / layout.ROSTER_DERIVED).rglob("*") if p.is_file()),
    ]
    return [path for group in groups for path in group]


# ioprio_set(2) by the machine's system call number: Python has no wrapper for it.
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}
_IOPRIO_WHO_PROCESS, _IOPRIO_CLASS_IDLE, _IOPRIO_CLASS_SHIFT = 1, 3, 13


def idle_io_priority() -> bool:
    """This thread's reads in the idle class, as `ionice -c 3` puts a process's: the disk's scheduler serves
    them when no other read waits (mq-deadline and bfq do; with none, the kernel's choice on fast disks, it is
    first come first served). False where it cannot be set."""
    number = _IOPRIO_SET.get(platform.machine())
    if number is None:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(number, _IOPRIO_WHO_PROCESS, threading.get_native_id(),
                            _IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT) == 0
    except (OSError, AttributeError):
        return False


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo, or None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def read_ahead(path: Path | str, stop: threading.Event | None = None) -> int:
    """The file asked of the disk a piece at a time (ASK_BYTES), until stop is set; the bytes asked for. Nothing
    is asked for where the system has no posix_fadvise, or the file cannot be opened."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return 0
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0
    asked = 0
    try:
        size = os.fstat(fd).st_size
        for offset in range(0, size, ASK_BYTES):
            if stop is not None and stop.is_set():
                break
            advise(fd, offset, ASK_BYTES, os.POSIX_FADV_WILLNEED)
            asked += min(ASK_BYTES, size - offset)
    except OSError:
        pass
    finally:
        os.close(fd)
    return asked


def within(paths: list[Path], budget: int | None) -> list[tuple[Path, int]]:
    """The paths with their sizes, in order, each while the sizes so far add up to at most budget (None: no
    limit; a file that would go over it is left out, a smaller one after it is not); a file not there is left
    out."""
    out, total = [], 0
    for path in paths:
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if budget is not None and total + size > budget:
            continue
        out.append((path, size))
        total += size
    return out


class StatePrefetch:
    """state_reads as they are when it is made, within half of the memory available then, asked of the disk by
    a thread of its own once start() is called. seconds and asked (bytes) once it is done; stop() ends it
    between two pieces."""

    def __init__(self, state: Path, database: Path) -> None:
        available = available_bytes()
        self.files = within(state_reads(state, database), None if available is None else available // 2)
        self.asked = 0
        self.seconds: float | None = None
        self.idle: bool | None = None  # whether its reads were in the idle class (idle_io_priority)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Asking begins (once; a stopped prefetch does not begin)."""
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._run, name="state-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t = time.perf_counter()
        advisable = hasattr(os, "posix_fadvise")  # not on every system: nothing is asked for there
        self.idle = idle_io_priority() if advisable else None
        try:
            for path, _ in self.files if advisable else ():
                if self._stop.is_set():
                    break
                self.asked += read_ahead(path, self._stop)
        finally:
            self.seconds = round(time.perf_counter() - t, 3)

    def stop(self) -> None:
        self._stop.set()

    def wait(self) -> None:
        """Until the asking is done, or at once if it never began (tests)."""
        if self._thread is not None:
            self._thread.join()

    def figures(self) -> dict:
        """For run.json: how much was asked for, of how many files, and how long the asking took (None while
        it goes on, or if it never began)."""
        return {"files": len(self.files), "bytes_asked": self.asked, "seconds": self.seconds,
                "idle_io_priority": self.idle}
