"""The run's record in the database: a full run's decisions go in from disk a million rows at a time; the call
lists are kept short and for a day, their untested residents counted as runs go."""

from __future__ import annotations

import json

import duckdb
import polars as pl

from flows.database import CALL_HISTORY, Database
from flows.settings import DuckDBSettings

SINCE = "2022-05-20T00:00:00+08:00"


def test_a_scan_goes_in_whole_in_parts_and_an_empty_one_still_makes_its_table(tmp_path):
    n = 2_500_001  # three parts of a million
    decisions = pl.DataFrame({"record_id": pl.int_range(n, eager=True).cast(pl.String),
                              "score": pl.int_range(n, eager=True).cast(pl.Float64) / 7})
    decisions.write_parquet(tmp_path / "decisions.parquet")
    decisions.head(0).write_parquet(tmp_path / "none.parquet")
    db = Database(DuckDBSettings(path=tmp_path / "g.duckdb"))
    try:
        db.record_run("r1", SINCE, {"decisions": pl.scan_parquet(tmp_path / "decisions.parquet"),
                                    "nothing": pl.scan_parquet(tmp_path / "none.parquet"),
                                    "coverage": pl.DataFrame({"level": ["total"]})}, lambda: "{}")
        db.record_run("r2", SINCE, {"decisions": decisions.head(3), "nothing": pl.scan_parquet(tmp_path / "none.parquet")},
                      lambda: "{}")
    finally:
        db.close()
    con = duckdb.connect(str(tmp_path / "g.duckdb"), read_only=True)
    try:
        kept = con.sql("SELECT record_id, score FROM run_decisions WHERE run_id = 'r1'").pl()
        assert kept.sort("score").equals(decisions)
        assert con.execute("SELECT count(*) FROM run_decisions WHERE run_id = 'r2'").fetchall()[0][0] == 3
        assert con.execute("SELECT count(*) FROM run_nothing").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM run_coverage").fetchall()[0][0] == 1
    finally:
        con.close()


def _call_list(untested: list[str], vaccination: list[str]) -> pl.DataFrame:
    ids = untested + vaccination
    return pl.DataFrame({
        "resident_id": ids, "grid_id": [f"G{i[-1]}" for i in ids], "name": ["张三"] * len(ids),
        "phone": ["13800138000"] * len(ids), "list": ["call"] * len(ids),
        "reason": ["untested"] * len(untested) + ["unvaccinated"] * len(vaccination)})


def _old_counts(lists: dict[str, tuple[str, pl.DataFrame]], since: str) -> dict[str, int]:
    """What escalation counted before the tally: the runs of the round listing each resident untested."""
    counts: dict[str, int] = {}
    for run_since, frame in lists.values():
        if run_since == since:
            for rid in frame.filter(pl.col("reason") == "untested")["resident_id"].unique():
                counts[rid] = counts.get(rid, 0) + 1
    return counts


def _counts(db: Database, since: str) -> dict[str, int]:
    return dict(db.earlier_untested_counts(since).select("resident_id", "earlier_untested_refreshes").iter_rows())


def _first_listed(db: Database, since: str) -> dict[str, str]:
    """Each resident's untested_since, as the run that first listed them untested was recorded."""
    recorded = dict(db.con.execute("SELECT recorded_at, run_id FROM runs").fetchall())
    return {rid: recorded[at] for rid, at in
            db.earlier_untested_counts(since).select("resident_id", "untested_since").iter_rows()}


LISTS = {
    "r1": (SINCE, _call_list(["a1", "b2", "c3"], ["a1", "d4"])),
    "r2": (SINCE, _call_list(["a1", "b2", "b2"], ["c3"])),  # b2 twice (two rows) still counts one refresh
    "r3": ("2022-05-27T00:00:00+08:00", _call_list(["a1"], [])),  # the next round counts from nought
    "r4": (SINCE, _call_list(["a1"], ["b2"])),
}


def test_untested_counts_and_a_days_lists_kept_without_phones_or_names(tmp_path):
    db = Database(DuckDBSettings(path=tmp_path / "g.duckdb", keep_call_lists=2))
    try:
        for run_id, (since, frame) in LISTS.items():
            db.record_run(run_id, since, {"call_list": frame}, lambda: "{}")
        assert _counts(db, SINCE) == _old_counts(LISTS, SINCE) == {"a1": 3, "b2": 2, "c3": 1}
        assert _counts(db, "2022-05-27T00:00:00+08:00") == {"a1": 1}
        assert _first_listed(db, SINCE) == {"a1": "r1", "b2": "r1", "c3": "r1"}
        assert _first_listed(db, "2022-05-27T00:00:00+08:00") == {"a1": "r3"}
        kept = db.con.sql("SELECT * FROM run_call_list ORDER BY run_id, resident_id").pl()
        assert kept.columns == [*CALL_HISTORY, "run_id"]
        assert kept["run_id"].unique().sort().to_list() == ["r3", "r4"]  # the last two runs
        assert kept.filter(pl.col("run_id") == "r4").drop("run_id").equals(
            LISTS["r4"][1].select(CALL_HISTORY).sort("resident_id"))
        assert db.previous_call_list().sort("resident_id").equals(
            LISTS["r4"][1].select("resident_id", "reason", "list").sort("resident_id"))
    finally:
        db.close()


def test_a_history_of_whole_call_lists_is_counted_once_and_cut_down(tmp_path):
    """A database written before the tally: its lists whole, every run's. The first refresh of this version
    counts them into the tally, as escalation counted them, and keeps the short columns of the last runs."""
    path = tmp_path / "g.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, recorded_at TIMESTAMP, run JSON)")
    for i, (run_id, (since, frame)) in enumerate(LISTS.items()):
        con.execute("INSERT INTO runs VALUES (?, TIMESTAMP '2022-05-20 08:00' + INTERVAL (?) HOUR, ?)",
                    [run_id, 2 * i, json.dumps({"parameters": {"since": since}})])
        tagged = frame.with_columns(pl.lit(run_id).alias("run_id"))  # noqa: F841 (read by name below)
        con.execute("INSERT INTO run_call_list SELECT * FROM tagged" if i else
                    "CREATE TABLE run_call_list AS SELECT * FROM tagged")
    con.close()
    db = Database(DuckDBSettings(path=path, keep_call_lists=3))
    try:
        assert _counts(db, SINCE) == _old_counts(LISTS, SINCE)
        assert _first_listed(db, SINCE) == {"a1": "r1", "b2": "r1", "c3": "r1"}
        assert db.con.sql("SELECT DISTINCT run_id FROM run_call_list ORDER BY 1").pl()["run_id"].to_list() == [
            "r2", "r3", "r4"]
        assert db._columns("run_call_list") == [*CALL_HISTORY, "run_id"]
        db.record_run("r5", SINCE, {"call_list": _call_list(["c3"], [])}, lambda: "{}")
        assert _counts(db, SINCE) == {"a1": 3, "b2": 2, "c3": 2}
        assert db.con.sql("SELECT DISTINCT run_id FROM run_call_list ORDER BY 1").pl()["run_id"].to_list() == [
            "r3", "r4", "r5"]
        db.record_run("r6", SINCE, {"call_list": _call_list(["e5"], [])}, lambda: "{}")
        assert _first_listed(db, SINCE) == {"a1": "r1", "b2": "r1", "c3": "r1", "e5": "r6"}
    finally:
        db.close()
