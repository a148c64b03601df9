"""Python's cyclic garbage collector, kept out of a refresh's way.

A full collection walks every object the process tracks. The CLI freezes what the imports made (a million
objects) and publishing freezes what the flow made, but a 20M-resident two-hour refresh still ran 25 full
collections of 0.10-0.27 s in the flow's process (3.9 s, while no other thread of it could run) and its
workbook helper 8 of 0.18-0.29 s (1.8 s), most of which walked the fork server's imports (Great
Expectations): measured with gc.callbacks, bench/HISTORY.md, fiftieth session.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Collections of the middle generation between two full ones while a refresh runs; Python's default is 10.
# Garbage in reference cycles that lived through two younger collections waits ten times longer to be freed.
# A refresh's memory is its frames, which are not in cycles: at 1M residents the stages' peaks rose by 0.03-0.21
# GiB (bench/HISTORY.md, fiftieth session).
FULL_EVERY = 100


def _full_less_often() -> tuple[int, int, int]:
    """The collector's third threshold raised to FULL_EVERY; returns the thresholds as they were."""
    before = gc.get_threshold()
    gc.set_threshold(before[0], before[1], max(before[2], FULL_EVERY))
    return before


@contextmanager
def fewer_full_collections() -> Iterator[None]:
    """Full collections a tenth as often for the length of a refresh; a process that serves the refresh
    every two hours has its own setting back between runs."""
    before = _full_less_often()
    try:
        yield
    finally:
        gc.set_threshold(*before)


def freeze_imports() -> None:
    """What the process holds now left out of every later collection (its imports: they live as long as it
    does) and fewer full collections from now on: for the fork server, whose children (the loading process,
    the workbook helpers) are forked with both."""
    gc.freeze()
    _full_less_often()
