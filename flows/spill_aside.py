"""A part of a run's spill written by a thread of its own while the flow goes on.

Not a method of flows.record_spill.Spill: that module is in the loaded sources' code key
(flows.loaded_sources), and a change to it loads every source of a city again at the next refresh (at 20M
residents, about eight minutes), though nothing here changes how a source is loaded.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import polars as pl

from flows.record_spill import Spill


def write_aside(spill: Spill, kind: str, frame: pl.DataFrame, timings: dict[str, float], label: str) -> Future:
    """spill.write(kind, frame) by a thread, its seconds in timings[label]; the Future gives spill.scan(kind)
    once the part is on disk, or raises what the write raised. Whoever removes the folder waits for it first."""
    def written() -> pl.LazyFrame:
        t = time.perf_counter()
        spill.write(kind, frame)
        timings[label] = round(time.perf_counter() - t, 3)
        return spill.scan(kind)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"spill-{kind}")
    try:
        return pool.submit(written)
    finally:
        pool.shutdown(wait=False)  # its one thread ends with the write
