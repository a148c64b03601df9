"""Incremental refresh: a full refresh without the last batch of test records, then a refresh with them (the
export grown by them at its end), on the same database; and a full refresh of everything from scratch to
compare with.

    python bench/incremental.py [--residents 1000000] [--batch 100000] [--work bench/work] [--no-scratch]
                                [--lean-disk] [--tail] [--batches 1]

Reuses the generated data of bench/refresh_1m.py in --work (generating it if missing). Each refresh runs
in its own process; prints wall time, stage timings and peak memory of each, and whether the incremental
outputs equal the from-scratch ones. The incremental refresh writes to the folder the one before it wrote
(books whose content did not change are hard-linked from it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from child_peak import refresh_figures, run_measured  # noqa: E402  (bench/, beside this script)

from flows.spare_files import wait_retired  # noqa: E402


def run(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and this command's own peak RSS in GiB; the refresh's own output is not shown."""
    return run_measured(cmd, env, ROOT, quiet=True)


def split_export(export: Path, earlier: Path, batch_rows: list[Path], batch: int, spread: bool = True) -> None:
    """The export two hours earlier (earlier: every row but the batch's, in their order) and the rows that came
    since (batch_rows, without a header), read a slice at a time by the refresh's own reader (the generator
    writes GB18030, as many exports come) and written as UTF-8 text under the contract's column names; a 20M
    city's 28.7 M test rows are never in memory whole. Appending batch_rows to earlier gives the export two
    hours later: the same bytes and more, as a test system's export of the day grows.

    spread: the batch is drawn from the whole export (by a hash of the record number), as two hours of samples
    come from every grid of a city; else it is the export's last rows, which the generator writes community by
    community, so that only the last communities' grids change (the figures before the sixteenth session).
    batch_rows: one file per two-hour batch, each of `batch` rows (more than one only when spread)."""
    import polars as pl

    from flows.readers import LINE, open_table
    from transforms.contract import TESTS

    if spread:
        with open(export, "rb") as fh:
            lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b""))
        share = round(batch * len(batch_rows) / max(1, lines - 1) * 1_000_000)  # of a million hash buckets
        h = pl.col("record_id").hash(seed=7)
        with open(earlier, "wb") as fh:
            laters = [open(p, "wb") for p in batch_rows]  # noqa: SIM115 (closed below)
            try:
                for i, part in enumerate(open_table(export, TESTS).slices(1_000_000)):
                    part = part.drop(LINE).with_columns((h % 1_000_000 < share).alias("_chosen"),
                                                        (h // 1_000_000 % len(batch_rows)).alias("_batch"))
                    part.filter(~pl.col("_chosen")).drop("_chosen", "_batch").write_csv(fh, include_header=i == 0)
                    for b, later in enumerate(laters):
                        part.filter(pl.col("_chosen") & (pl.col("_batch") == b)).drop("_chosen", "_batch").write_csv(
                            later, include_header=False)
            finally:
                for later in laters:
                    later.close()
        return
    if len(batch_rows) != 1:
        raise ValueError("the export's tail makes one batch")
    batch_rows = batch_rows[0]
    held: list[pl.DataFrame] = []  # the newest rows, at least `batch` of them once there are as many
    with open(earlier, "wb") as fh:
        first = True
        for part in open_table(export, TESTS).slices(1_000_000):
            held.append(part.drop(LINE))
            while held and sum(f.height for f in held) - held[0].height >= batch:
                held.pop(0).write_csv(fh, include_header=first)
                first = False
        rest = pl.concat(held) if held else pl.DataFrame()
        rest.head(max(0, rest.height - batch)).write_csv(fh, include_header=first)
    rest.tail(min(batch, rest.height)).write_csv(batch_rows, include_header=False)


def append(target: Path, rows: Path) -> None:
    with open(target, "ab") as out, open(rows, "rb") as src:
        shutil.copyfileobj(src, out, 1 << 24)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100_000, help="test records arriving in the last two hours")
    ap.add_argument("--work", default=str(ROOT / "bench" / "work"))
    ap.add_argument("--no-scratch", action="store_true",
                    help="skip the from-scratch refresh and the comparison (tests/test_incremental.py proves the equality)")
    ap.add_argument("--batches", type=int, default=1,
                    help="two-hour batches, each appended and refreshed in turn (the refresh after a refresh)")
    ap.add_argument("--tail", action="store_true",
                    help="the batch is the export's last rows (a few communities) rather than drawn from every grid")
    ap.add_argument("--lean-disk", action="store_true",
                    help="with --no-scratch: delete call_list.csv of each refresh but the last once its figures "
                    "are read (at 20M the outputs of two refreshes, the state and DuckDB's spill outgrow this "
                    "machine's disk; the decisions' parts in matches/ are the next output's too, hard-linked)")
    args = ap.parse_args()
    if args.lean_disk and not args.no_scratch:
        ap.error("--lean-disk needs --no-scratch: the comparison reads call_list.csv")
    if args.batches > 1 and args.tail:
        ap.error("--batches needs batches drawn from the whole export (not --tail)")
    import polars as pl

    from flows.match_parts import scan_matches

    work = Path(args.work) / f"n{args.residents}_s{args.seed}"
    data, inc = work / "data", work / "incremental"
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRIDSWEEP_STATE_DIR=str(inc / "state"))
    py = sys.executable
    if not (data / "campaign.toml").exists():
        run([py, "-m", "flows.cli", "generate", "--residents", str(args.residents), "--seed", str(args.seed),
             "--out", str(data)], env)
    shutil.rmtree(inc, ignore_errors=True)
    inc.mkdir(parents=True)
    export = inc / "tests_export.csv"
    batch_rows = [inc / ("tests_batch.csv" if b == 0 else f"tests_batch_{b + 1}.csv") for b in range(args.batches)]
    split_export(data / "tests.csv", export, batch_rows, args.batch, spread=not args.tail)
    results = {"batch_from": "tail" if args.tail else "spread"}
    # The two-hourly refresh writes where the last one did, as the scheduled flow does: a book whose content
    # did not change is then hard-linked from the last output, not written again. Before each incremental
    # refresh the export grows by a batch, in place, as the test system's export of the day does.
    plan = [("full_before_batch", "inc", "out_refresh", None)]
    plan += [("incremental_with_batch" + ("" if b == 0 else f"_{b + 1}"), "inc", "out_refresh", rows)
             for b, rows in enumerate(batch_rows)]
    if not args.no_scratch:
        plan.append(("from_scratch_with_batch", "scratch", "out_from_scratch", None))
    for name, db, folder, rows in plan:
        if rows is not None:
            append(export, rows)
        out = inc / folder
        wall, peak = run([py, "-m", "flows.cli", "run", "--config", str(data / "campaign.toml"), "--tests",
                          str(export), "--out", str(out), "--db", str(inc / db / "g.duckdb")], env)
        # The replaced output is emptied by a process of its own after the run (flows.spare_files.Retirer); two
        # hours pass before the next refresh, so each is timed once that is done, as it would run.
        t = time.perf_counter()
        wait_retired(out)
        report = json.loads((out / "run.json").read_text(encoding="utf-8"))
        results[name] = {"retirer_after_run_seconds": round(time.perf_counter() - t, 1)} | refresh_figures(
            report, wall, peak)
        if args.lean_disk and name != plan[-1][0]:  # what the next refresh does not read of the last output
            # (it reads books.json, the books and the print pages); the last refresh's stays whole, to be scored
            (out / "call_list.csv").unlink(missing_ok=True)
        print(name, json.dumps(results[name]), flush=True)
    a, b = inc / "out_refresh", inc / "out_from_scratch"

    def frame(p: Path | pl.LazyFrame, drop: tuple = ()) -> pl.DataFrame:
        f = (p if isinstance(p, pl.LazyFrame) else pl.scan_csv(p, infer_schema=False)).drop(list(drop)).collect()
        return f.sort(f.columns, nulls_last=True)

    if not args.no_scratch:
        results["identical"] = {
            "matches": frame(scan_matches(a)).equals(frame(scan_matches(b))),
            "call_list": frame(a / "call_list.csv", ("new_since_last",)).equals(
                frame(b / "call_list.csv", ("new_since_last",))),
            "coverage": frame(a / "coverage.csv").equals(frame(b / "coverage.csv")),
        }
    print(json.dumps(results, indent=1))
    (inc / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
