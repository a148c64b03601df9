"""One more two-hour batch appended to the test export of bench/incremental.py's work folder, to measure the
refresh after many others (the state grown batch by batch, as it does through a round):

    python bench/next_batch.py --work bench/work --residents 20000000 --number N [--newly 600000] [--retests 400000]
                               [--refresh [--state DIR] [--cold]]

With --refresh it then refreshes on the grown export, as the two-hourly refresh would, and prints the run's
figures (as bench/incremental.py does for its refreshes): `flows.cli run --tests .../incremental/tests_export.csv
--out .../incremental/out_refresh`, with GRIDSWEEP_STATE_DIR the state to refresh (--state: by default
.../incremental/state, bench/incremental.py's, with its database .../incremental/inc/g.duckdb; a full refresh's
state from bench/refresh_1m.py is .../state, with the database in it). The incremental folder is
bench/incremental.py's, or one seeded from a full refresh: its tests_export.csv a copy of data/tests.csv
and its out_refresh that refresh's output.

The batch holds, dated in the round's last two hours:
- newly tested: up to --newly residents on the last refresh's untested call list (a quarter of them, chosen by
  a hash of the batch number), their names, IDs, phones and addresses as the roster has them;
- re-tests: --retests of the generated rows of the export, drawn from the whole of it by a hash of the batch
  number (a different sample of people each batch, with their records' typos), under new record numbers.

Before the twenty-eighth session the re-tests were the same 400,000 rows every batch (a script not kept), so
the same residents gained a record every two hours: after 34 batches the residents a refresh ruled again held
12.6 M test records, and the rules spent 11.7 s finding them. This script spreads them as a city's would be.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from child_peak import refresh_figures, run_measured  # noqa: E402  (bench/, beside this script)
from machine_speed import measure  # noqa: E402

from flows.readers import _map_headers  # noqa: E402
from flows.spare_files import wait_retired  # noqa: E402
from transforms.contract import ROSTER, TESTS  # noqa: E402

_BUCKETS = 1_000_000


def _times(n: int, as_of: datetime, seed: int) -> pl.Series:
    """n sampling times spread over the two hours before as_of."""
    seconds = pl.int_range(0, n, eager=True).hash(seed=seed) % 7200
    return (pl.lit(as_of - timedelta(hours=2)) + pl.duration(seconds=seconds)).dt.strftime(
        "%Y-%m-%d %H:%M:%S").alias("sampled_at")


def newly_tested(roster_csv: Path, call_list_csv: Path, number: int, most: int, as_of: datetime) -> pl.DataFrame:
    untested = (pl.scan_csv(call_list_csv, infer_schema=False)
                .filter((pl.col("list") == "call") & (pl.col("reason") == "untested")).select("resident_id").unique())
    chosen = untested.filter(pl.col("resident_id").hash(seed=number) % 4 == 0)
    zh = {c.name: c.zh for c in ROSTER.columns}  # the generator writes the roster under its Chinese headers
    wanted = ["resident_id", "name", "id_type", "id_number", "phone", "address"]
    roster = pl.scan_csv(roster_csv, infer_schema=False).select(pl.col(zh[c]).alias(c) for c in wanted)
    new = roster.join(chosen, on="resident_id").collect().head(most).with_row_index("i")
    return new.select(
        (pl.lit(f"N{number}-") + pl.col("i").cast(pl.String).str.zfill(8)).alias("record_id"), "name", "id_type",
        "id_number", "phone", _times(new.height, as_of, number), pl.lit("临时采样点").alias("site"), "address")


@dataclass(frozen=True)
class Export:
    """The grown export as the harness reads and appends to it: its encoding and which column holds what.
    Read a block of lines at a time, decoded in memory: the refresh's own reader (flows.readers.open_table)
    makes a UTF-8 copy of the whole file first, 12 GB more at 20M residents after 146 batches, which filled
    this machine's disk (session 43)."""

    path: Path
    encoding: str
    mapping: dict[int, str]  # column index -> contract name

    @classmethod
    def open(cls, path: Path) -> Export:
        with open(path, "rb") as fh:
            head = fh.readline()
        try:
            header, encoding = head.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError:
            header, encoding = head.decode("gb18030"), "gb18030"
        mapping, _ = _map_headers(path, next(csv.reader([header.rstrip("\r\n")])), TESTS)
        return cls(path, encoding, mapping)

    def parts(self, block: int = 1 << 28):
        """The rows (all String, under the contract's names), about `block` bytes of the file at a time."""
        with open(self.path, "rb") as fh:
            fh.readline()  # the header
            rest = b""
            for chunk in iter(lambda: fh.read(block), b""):
                chunk = rest + chunk
                cut = chunk.rfind(b"\n") + 1
                chunk, rest = chunk[:cut], chunk[cut:]
                if chunk:
                    yield self._frame(chunk)
            if rest.strip():
                yield self._frame(rest)

    def _frame(self, chunk: bytes) -> pl.DataFrame:
        text = chunk.decode(self.encoding.removesuffix("-sig")).encode("utf-8")
        frame = pl.read_csv(io.BytesIO(text), has_header=False, infer_schema=False, truncate_ragged_lines=True)
        return frame.select(frame.to_series(i).alias(name) for i, name in self.mapping.items())


def _generated_rows(export: Path) -> int:
    """The export's rows but those earlier batches appended (record numbers N<n>- or R<n>-), counted in its
    bytes in one pass."""
    appended = re.compile(rb"\n[NR]\d+-")
    lines = batches = 0
    with open(export, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            lines += block.count(b"\n")
            batches += len(appended.findall(block))
    return lines - 1 - batches  # the header is a line too


def retests(export: Export, number: int, rows: int, as_of: datetime) -> pl.DataFrame:
    # The generated rows only, not earlier batches' (their numbers begin N<n> or R<n>): a person is then as
    # likely to be re-tested as their first records make them, however many batches re-tested them before.
    share = min(_BUCKETS, round(rows * _BUCKETS / max(1, _generated_rows(export.path))))  # about `rows`, from all of it
    chosen = pl.col("record_id").hash(seed=1000 + number) % _BUCKETS < share
    again = pl.concat([part.filter(~pl.col("record_id").str.contains(r"^[NR]\d") & chosen)
                       for part in export.parts()])
    return again.with_columns((pl.lit(f"R{number}-") + pl.col("record_id")).alias("record_id"),
                              _times(again.height, as_of, 1000 + number))


def _append(export: Export, rows: pl.DataFrame) -> None:
    """Rows added at the export's end as its own rows are written: its encoding, its columns in its order."""
    order = [export.mapping[i] for i in sorted(export.mapping)]
    text = rows.select(order).write_csv(include_header=False)
    with open(export.path, "ab") as fh:
        fh.write(text.encode(export.encoding.removesuffix("-sig")))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(ROOT / "bench" / "work"))
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--number", type=int, required=True, help="the batch's number: a different sample each")
    ap.add_argument("--newly", type=int, default=600_000)
    ap.add_argument("--retests", type=int, default=400_000)
    ap.add_argument("--refresh", action="store_true", help="then refresh on the grown export and print its figures")
    ap.add_argument("--state", help="the state to refresh (GRIDSWEEP_STATE_DIR); default: bench/incremental.py's")
    ap.add_argument("--cold", action="store_true",
                    help="the page cache emptied before the refresh (needs root): the state's files as the "
                         "two-hourly refresh finds them, not as the refresh minutes before left them")
    args = ap.parse_args()
    work = Path(args.work) / f"n{args.residents}_s{args.seed}"
    inc = work / "incremental"
    export = inc / "tests_export.csv"
    if args.refresh:
        # The batch made by a process of its own, which ends before the refresh starts: at 20M this one held
        # 4.7 GB of the batch's frames through the refresh, and beside a refresh reading all three sources
        # again (the loading code changed) the machine ran out of memory (bench/HISTORY.md, fiftieth session).
        subprocess.run([sys.executable, __file__, *(a for a in sys.argv[1:] if a not in ("--refresh", "--cold"))],
                       check=True)
        refresh(work, export, args.state, cold=args.cold)
        return 0
    round_ = tomllib.loads((work / "data" / "campaign.toml").read_text(encoding="utf-8"))["round"]
    as_of = datetime.fromisoformat(round_["as_of"])
    new = newly_tested(work / "data" / "roster.csv", inc / "out_refresh" / "call_list.csv", args.number,
                       args.newly, as_of)
    table = Export.open(export)
    again = retests(table, args.number, args.retests, as_of)
    columns = again.columns
    rows = pl.concat([new.select(columns), again.select(columns)]).sample(fraction=1.0, shuffle=True,
                                                                          seed=args.number)
    _append(table, rows)
    print(f"batch {args.number}: {new.height} newly tested, {again.height} re-tests "
          f"({again['id_number'].n_unique()} distinct ID numbers) appended to {export}", flush=True)
    return 0


def drop_page_cache() -> None:
    """Every clean page of every file out of the kernel's cache. Two hours after the last refresh a machine
    that does anything else (here: a memory manager that pages out what has not been touched for a minute)
    holds little of the state's 20-odd GB; batches run minutes apart found most of it still cached."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        raise SystemExit(f"--cold: the page cache could not be emptied ({exc}); it needs root") from exc


def refresh(work: Path, export: Path, state: str | None, *, cold: bool = False) -> None:
    """The two-hourly refresh on the grown export, into the output the last one wrote, timed once the output it
    replaced is emptied (as bench/incremental.py times its refreshes). cold: drop_page_cache first."""
    inc, out = work / "incremental", work / "incremental" / "out_refresh"
    cmd = [sys.executable, "-m", "flows.cli", "run", "--config", str(work / "data" / "campaign.toml"), "--tests",
           str(export), "--out", str(out)]
    if state is None:  # bench/incremental.py's layout
        state, cmd = str(inc / "state"), [*cmd, "--db", str(inc / "inc" / "g.duckdb")]
    machine = measure(work)  # how fast the machine is today (bench/machine_speed.py)
    if cold:
        drop_page_cache()
    wall, peak = run_measured(cmd, dict(os.environ, PYTHONPATH=str(ROOT), GRIDSWEEP_STATE_DIR=state), ROOT,
                              quiet=True)
    wait_retired(out)
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    print(json.dumps(refresh_figures(report, wall, peak) | {"machine": machine, "cold": cold}))


if __name__ == "__main__":
    raise SystemExit(main())
