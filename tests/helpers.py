"""Building small tables by hand for table-driven tests, and running the linker on them."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from flows.match_parts import scan_matches
from transforms.comparison import ScoreSettings
from transforms.contract import ROSTER, TESTS, Contract
from transforms.decision import DecisionSettings
from transforms.linking import (
    BlockingSettings,
    blocking_stage_sql,
    exact_stage_sql,
    roster_keys_sql,
    rule_text,
)
from transforms.normalise import IDENTITY_COLUMNS, normalise_people
from transforms.pair_decisions import decide_pairs, households, number_records, number_residents, roster_side
from transforms.parsing import LINE, parse_rows
from transforms.record_rows import records_for_linking

ROSTER_DEFAULTS = {
    "address": "科苑路1巷3栋2单元502", "street": "粤海街道", "community": "科技园社区", "grid_id": "G1",
    "grid_worker": "李网格",
}


def table(rows: list[dict], contract: Contract, defaults: dict | None = None) -> pl.DataFrame:
    """Raw string rows -> parsed rows (raises if any row is quarantined: hand-made cases should be clean)."""
    full = [{**(defaults or {}), **r} for r in rows]
    cols = sorted({k for r in full for k in r})
    raw = pl.DataFrame({c: [r.get(c) for r in full] for c in cols}, schema={c: pl.String for c in cols})
    raw = raw.with_columns(pl.int_range(2, raw.height + 2).cast(pl.Int64).alias(LINE))
    parsed = parse_rows(raw, contract)
    assert parsed.quarantine.height == 0, parsed.quarantine.to_dicts()
    return parsed.rows


def roster(rows: list[dict]) -> pl.DataFrame:
    return table(rows, ROSTER, ROSTER_DEFAULTS)


def records_table(rows: list[dict]) -> pl.DataFrame:
    return table(rows, TESTS, {"sampled_at": "2022-05-20 09:00"})


def _stages(roster_rows: pl.DataFrame, test_rows: pl.DataFrame):
    """The production linking SQL on an in-memory DuckDB: the roster side, and each stage's pairs with the
    batch of records they number."""
    residents = number_residents(normalise_people(roster_rows, ROSTER).select("resident_id", *IDENTITY_COLUMNS))
    records = number_records(records_for_linking(normalise_people(test_rows, TESTS), None, IDENTITY_COLUMNS))
    con = duckdb.connect()

    def put(name: str, frame: pl.DataFrame) -> None:
        con.register("_f", frame)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _f")
        con.unregister("_f")

    try:
        put("residents", residents)
        put("records", records)
        settings = BlockingSettings()
        for step in [*roster_keys_sql(settings), *exact_stage_sql()]:
            con.execute(step.sql)
        roster = roster_side(residents, households(residents, settings.max_phone_block))
        exact = con.sql("SELECT * FROM candidate_pairs").pl()
        # As the flow does: the records the exact stage left are blocked as a batch of their own.
        left = con.sql("SELECT _li FROM exact_pending ORDER BY _li").pl()["_li"]
        pending = number_records(records.drop("_li").gather(left))
        put("records", pending)
        for step in blocking_stage_sql(settings):
            con.execute(step.sql)
        blocked = con.sql("SELECT * FROM candidate_pairs").pl()
    finally:
        con.close()
    return roster, ((exact, records), (blocked, pending))


def link(roster_rows: pl.DataFrame, test_rows: pl.DataFrame, pairs_per_slice: int = 1_000_000) -> pl.DataFrame:
    """The production linker end to end on an in-memory DuckDB: SQL stages, comparison, decision."""
    roster, stages = _stages(roster_rows, test_rows)
    decide = [decide_pairs(pairs, batch, roster, ScoreSettings(), DecisionSettings(), pairs_per_slice)
              for pairs, batch in stages]
    return pl.concat(decide, how="vertical_relaxed")


def blocked_candidates(roster_rows: pl.DataFrame, test_rows: pl.DataFrame) -> dict[tuple[str, str], set[str]]:
    """The blocking stage's candidates, (record_id, resident_id) -> the rules that proposed the pair, whether
    or not a decision keeps them."""
    roster, (_, (blocked, pending)) = _stages(roster_rows, test_rows)
    pairs = blocked.select(record_id=pending["record_id"].gather(blocked["_li"]),
                           resident_id=roster.residents["resident_id"].gather(blocked["_ri"]),
                           rules=rule_text(pl.col("rule_bits")))
    return {(r, p): set(rules.split("+")) for r, p, rules in pairs.iter_rows()}


def decision_for(links: pl.DataFrame, record_id: str) -> tuple[str | None, str | None]:
    row = links.filter(pl.col("record_id") == record_id)
    if row.height == 0:
        return None, None
    return row["resident_id"][0], row["decision"][0]


def rows_sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame's rows sorted by every column: two frames compared whatever their order."""
    return frame.sort(frame.columns, nulls_last=True)


def sorted_csv(path, drop=()) -> pl.DataFrame:
    """A published CSV as text, less the columns dropped, its rows sorted: compared whatever their order."""
    return rows_sorted(pl.read_csv(path, infer_schema=False).drop(list(drop)))


def matches(out) -> pl.DataFrame:
    """Every decision an output lists in matches/ (its parts one after the other), as text."""
    return scan_matches(out).collect()


def sorted_matches(out) -> pl.DataFrame:
    """matches(out), its rows sorted: two outputs compared however their decisions were cut into parts."""
    return rows_sorted(matches(out))


def fact_part(folder: Path, name: str, first: int, rows: int, tag: str = "") -> Path:
    """A part of the tests' facts as the loader keeps it: rows test records numbered from first (a name carries
    tag, to tell versions apart), in fifty buildings, a third sampled at a community's site."""
    n = pl.int_range(first, first + rows, eager=True)
    frame = pl.DataFrame({
        "record_id": n.cast(pl.String).str.zfill(6).alias("record_id"),
        "name": ("人" + n.cast(pl.String) + tag).alias("name"),
        "phone": ("139" + n.cast(pl.String).str.zfill(8)).alias("phone"),
        "id_clean": pl.Series([None if i % 3 else f"44030319800101{i % 10000:04d}" for i in n], dtype=pl.String),
        "address": ("前海路" + n.cast(pl.String) + "号").alias("address"),
        "site": pl.Series(["科技园社区采样点" if i % 3 == 0 else "别处采样点" for i in n]),
        "sampled_at": pl.Series([datetime(2022, 5, 20) + timedelta(minutes=int(i)) for i in n]),
        "addr_block": pl.Series([f"B{i % 50}" for i in n]),
        "other": pl.Series(["not read"] * rows),
    })
    path = folder / name
    frame.write_parquet(path)
    return path


def run_parts(source: list[Path], run: Path) -> list[Path]:
    """A run's parts as the loader gives them: the kept parts hard-linked into the run's own folder."""
    run.mkdir()
    out = []
    for part in source:
        os.link(part, run / part.name)
        out.append(run / part.name)
    return out
