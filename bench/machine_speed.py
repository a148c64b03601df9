"""How fast this machine is today, by three fixed pieces of work, so a bench's figures can be compared with
those of another day: machines of this project's kind have run the same refresh 1.2-2.1 times as long from
one session to the next (bench/HISTORY.md), and until now only the stages a change did not touch told how
much of a difference was the machine's.

    python bench/machine_speed.py [--folder DIR]

- interpreter: a pure-Python loop on one core (the flow's own code, Prefect, Great Expectations);
- polars: a sort and a group-by of 2 M generated rows on every core (loading, linking, the rules);
- disk: 1 GiB written and synced in the folder given (the bench's work folder: its own disk), then read
  back with the page cache dropped for that file (reading the exports, writing the books).

Each is run three times and the best is kept (a noisy neighbour only ever makes a run slower).
bench/refresh_1m.py records them beside its figures; the README gives the day's figures with its tables.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import polars as pl

_ROWS = 2_000_000
_DISK_BYTES = 1 << 30
_BLOCK = 1 << 22


def _best(work, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return round(min(times), 3)


def _interpreter() -> None:
    total = 0
    for i in range(10_000_000):
        total += i % 7
    if total < 0:  # never: keeps the loop's result alive
        raise AssertionError


def _polars() -> None:
    frame = pl.DataFrame({"i": pl.int_range(0, _ROWS, eager=True)}).with_columns(
        (pl.col("i").hash(seed=1) % 1_000_003).alias("k"), pl.col("i").hash(seed=2).cast(pl.String).alias("s"))
    frame.sort("s")
    frame.group_by("k").agg(pl.len(), pl.col("i").sum())


def _disk(folder: Path) -> tuple[float, float]:
    """Seconds to write and sync 1 GiB, and to read it back from the disk."""
    block = os.urandom(_BLOCK)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".machine-speed-") as f:
        t = time.perf_counter()
        for _ in range(_DISK_BYTES // _BLOCK):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
        written = time.perf_counter() - t
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # read from the disk, not the cache
        t = time.perf_counter()
        with open(f.name, "rb", buffering=0) as r:
            while r.read(_BLOCK):
                pass
        return written, time.perf_counter() - t


def measure(folder: Path) -> dict:
    """Seconds each piece of work took at best, and the disk's speeds in GB/s."""
    folder.mkdir(parents=True, exist_ok=True)
    disk = [_disk(folder) for _ in range(3)]
    write, read = min(d[0] for d in disk), min(d[1] for d in disk)
    return {"interpreter_s": _best(_interpreter), "polars_s": _best(_polars),
            "disk_write_gb_s": round(_DISK_BYTES / 1e9 / write, 2), "disk_read_gb_s": round(_DISK_BYTES / 1e9 / read, 2),
            "cpus": os.cpu_count()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", default=tempfile.gettempdir(), help="where the disk's 1 GiB is written")
    args = ap.parse_args()
    print(json.dumps(measure(Path(args.folder))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
