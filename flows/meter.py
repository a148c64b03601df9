"""Peak resident memory per stage of a run, for run.json and the benchmarks.

ru_maxrss only says the peak of the whole process so far; a stage that frees what the previous one
built would hide behind it. A sampling thread reads the current RSS a few times a second instead.
"""

from __future__ import annotations

import os
import threading
import time

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss(pid: int | str = "self") -> int:
    """Bytes resident now in this process, or in process pid (Linux); 0 where /proc is not there, or the
    process is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


class StageMeter:
    """Call mark(name) at the end of each stage: the peak since the previous mark is kept under name. A stage
    met more than once (each source is read, checked and normalised in turn) keeps its highest peak."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peaks: dict[str, float] = {}
        self._peak = current_rss()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="gridsweep-rss", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            rss = current_rss()
            with self._lock:
                self._peak = max(self._peak, rss)

    def mark(self, name: str) -> float:
        rss = current_rss()
        with self._lock:
            self.peaks[name] = max(self.peaks.get(name, 0.0), round(max(self._peak, rss) / 2**30, 2))
            self._peak = rss
        return self.peaks[name]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def add_time(timings: dict[str, float], name: str, seconds: float) -> None:
    """Adds seconds to a step's time in run.json's timings: a step met more than once (a batch, a slice)
    adds up."""
    timings[name] = round(timings.get(name, 0.0) + seconds, 3)


def time_since(timings: dict[str, float], name: str, since: float) -> float:
    """add_time of the seconds since a time.perf_counter() reading; the reading now, where a next step's
    time begins."""
    now = time.perf_counter()
    add_time(timings, name, now - since)
    return now
