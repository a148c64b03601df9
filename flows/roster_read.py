"""Linking's one read of the roster (its resident_id and identity columns), begun as soon as the roster is
loaded, while the test and vaccination exports are still being loaded by the loading process.

At 20M residents a two-hour refresh read those columns (14 of them, 20 M rows) at the start of the link, 6.4-9.4
s (10-11 s when the files had gone cold), with one core idle for most of the loading before it: the loading
process hashes the grown test export and parses its new rows on one core. Read by a thread of the flow's
process from the moment the roster's parts are on disk, the link finds the frame waiting.

The frame is handed over once (take): the reader keeps no reference after, so the link lets it go when it is
done with it, as it did when it read the roster itself (Prefect holds a task's arguments until it returns).
"""

from __future__ import annotations

import threading
import time

import polars as pl


class RosterRead:
    """`scan` collected by a thread of its own from now on; take() waits for it and hands the frame over."""

    def __init__(self, scan: pl.LazyFrame) -> None:
        self.seconds: float | None = None  # the thread's own time, once it is done
        self._frame: pl.DataFrame | None = None
        self._error: BaseException | None = None
        # A daemon: a run that fails while loading does not wait for a read no one will take.
        self._thread = threading.Thread(target=self._read, args=(scan,), name="roster-read", daemon=True)
        self._thread.start()

    def _read(self, scan: pl.LazyFrame) -> None:
        t = time.perf_counter()
        try:
            self._frame = scan.collect().rechunk()
        except BaseException as exc:  # raised where the frame is taken, as a read in the link would have
            self._error = exc
        finally:
            self.seconds = round(time.perf_counter() - t, 3)

    def take(self) -> pl.DataFrame:
        """The frame, once; raises what reading it raised."""
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        frame, self._frame = self._frame, None
        if frame is None:
            raise RuntimeError("the roster read was taken already")
        return frame
