"""The run's record in the database: a full run's decisions go in from disk a million rows at a time."""

from __future__ import annotations

import duckdb
import polars as pl

from flows.database import Database
from flows.settings import DuckDBSettings


def test_a_scan_goes_in_whole_in_parts_and_an_empty_one_still_makes_its_table(tmp_path):
    n = 2_500_001  # three parts of a million
    decisions = pl.DataFrame({"record_id": pl.int_range(n, eager=True).cast(pl.String),
                              "score": pl.int_range(n, eager=True).cast(pl.Float64) / 7})
    decisions.write_parquet(tmp_path / "decisions.parquet")
    decisions.head(0).write_parquet(tmp_path / "none.parquet")
    db = Database(DuckDBSettings(path=tmp_path / "g.duckdb"))
    try:
        db.record_run("r1", "{}", {"decisions": pl.scan_parquet(tmp_path / "decisions.parquet"),
                                   "nothing": pl.scan_parquet(tmp_path / "none.parquet"),
                                   "coverage": pl.DataFrame({"level": ["total"]})})
        db.record_run("r2", "{}", {"decisions": decisions.head(3), "nothing": pl.scan_parquet(tmp_path / "none.parquet")})
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
