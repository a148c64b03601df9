"""Linking's one read of the roster (its resident_id and identity columns), begun by a thread of the flow's
process while the loading process is still at work on the sources after the first record source.

At 20M residents a two-hour refresh read those columns (14 of them, 20 M rows) at the start of the link: 6.4-9.4
s (10-11 s when the files had gone cold), two cores busy, most of it the kernel's (pages faulted in). Begun as
soon as the roster was loaded, the read ran beside the test export's load, which hashes the grown export on
one core to know its old rows are unchanged: that load took 15.3 s instead of 8.1 (batch 121), as long as
the link gained. Begun once the test export is in, it runs beside the vaccinations' load and the suites'
Data Docs, and the link waited 1.9 s for it instead of reading for 9.4 (batch 122).

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
