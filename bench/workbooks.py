"""Writing the worker books of a finished run again, by 1 and by N writers (flows.workbooks: a thread of this
process, and N-1 helper processes): books per second, and whether parallel writing pays on this machine.

    python bench/workbooks.py --out bench/work/n1000000_s1/out [--writers 1 2] [--into /dev/shm]

Reads the run's call_list.csv, coverage.csv and unregistered.csv (as published), rebuilds the books the
way the refresh does (transforms.sheets) and writes them into a temporary folder each time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import polars as pl

    from flows.workbooks import write_workbooks
    from transforms.sheets import build_worker_books, safe_file_name

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="the --out folder of a finished run")
    ap.add_argument("--writers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--into", help="where the books are written (a temporary folder in it; default: the system's "
                    "temporary folder); a memory file system such as /dev/shm leaves out the disk's time")
    args = ap.parse_args()
    out = Path(args.out)
    call_list = pl.read_csv(out / "call_list.csv", infer_schema=False)
    coverage = pl.read_csv(out / "coverage.csv", infer_schema=False).with_columns(
        pl.col("residents", "in_scope", "tested").cast(pl.Int64))
    unregistered = pl.read_csv(out / "unregistered.csv", infer_schema=False)
    grid_workers = call_list.select("street", "community", "grid_id", "grid_worker").unique()
    t = time.perf_counter()
    books = build_worker_books(call_list, coverage, grid_workers, as_of_text="bench", unregistered=unregistered)
    build = time.perf_counter() - t
    cells = sum(f.height * f.width for b in books for f in b.sheets.values())
    results = {"books": len(books), "cells": cells, "build_seconds": round(build, 2), "write": []}
    for n in args.writers:
        folder = Path(tempfile.mkdtemp(prefix="gridsweep-wb-", dir=args.into))
        try:
            jobs = [(b, folder / safe_file_name(b.street) / safe_file_name(b.community) / b.file_name) for b in books]
            t = time.perf_counter()
            write_workbooks(jobs, workers=n)
            secs = time.perf_counter() - t
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        results["write"].append({"writers": n, "seconds": round(secs, 1), "books_per_second": round(len(books) / secs, 1),
                                 "ten_thousand_books_seconds": round(10_000 * secs / len(books), 1)})
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
