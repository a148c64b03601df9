"""A source's next slice read and its last one written while the one between is parsed and normalised.

Loading a city's export is a slice at a time: read the CSV slice, parse it, normalise it, write its Parquet
parts. Done one after another the loading process kept about 1.1 of the 2 cores busy (20M residents: 195 s
wall, 223 s user for the vaccinations). Reading a slice (polars' CSV reader, or the transcoder's) and writing
Parquet are mostly polars and the disk, which let go of the GIL, so each runs in a thread of its own beside
the parsing and normalising of the slice between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import polars as pl

_END = object()


class SliceOverlap:
    """Iterates `slices`, the next one read by a thread while the caller works on this one; write(frame) hands
    a finished slice to `sink` in another thread, in order and one at a time (a write first waits for the one
    before). So at most one slice is read ahead and one written behind: two slices more in memory at once.
    An error in either thread is raised in the caller: a read's at the next slice, a write's at the next
    write or when the block ends. Use as a context manager: leaving it waits for the threads, so every
    slice handed to write() is written (or has raised) once the block is left without an error."""

    def __init__(self, slices: Iterator[pl.DataFrame], sink: Callable[[pl.DataFrame], None]) -> None:
        self._slices, self._sink = slices, sink
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-behind")
        self._written: Future | None = None

    def __iter__(self) -> Iterator[pl.DataFrame]:
        ahead = self._reader.submit(next, self._slices, _END)
        while True:
            box = [ahead.result()]
            if box[0] is _END:
                return
            ahead = self._reader.submit(next, self._slices, _END)
            yield box.pop()  # no reference kept here: the caller lets go of the slice when it is done with it

    def write(self, frame: pl.DataFrame) -> None:
        if self._written is not None:
            self._written.result()
        self._written = self._writer.submit(self._sink, frame)

    def __enter__(self) -> SliceOverlap:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if exc_type is None and self._written is not None:
                self._written.result()
        finally:
            self._writer.shutdown(wait=True)
            self._reader.shutdown(wait=True, cancel_futures=True)
