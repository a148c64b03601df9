"""The run's record in the database: a full run's decisions go in from disk a million rows at a time; the call
lists are kept short and for a day, their untested residents counted as runs go."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest

from flows.database import CALL_HISTORY, Database
from flows.settings import DuckDBSettings

SINCE = "2022-05-20T00:00:00+08:00"


def test_a_scan_goes_in_whole_in_parts_and_an_empty_one_still_makes_its_table(tmp_path):
    n = 2_500_001  # three parts of a million
    table = pl.DataFrame({"level": pl.int_range(n, eager=True).cast(pl.String)})
    table.write_parquet(tmp_path / "table.parquet")
    table.head(0).write_parquet(tmp_path / "none.parquet")
    db = Database(DuckDBSettings(path=tmp_path / "g.duckdb"))
    try:
        db.record_run("r1", SINCE, {"coverage": pl.scan_parquet(tmp_path / "table.parquet"),
                                    "nothing": pl.scan_parquet(tmp_path / "none.parquet")}, lambda: "{}")
    finally:
        db.close()
    con = duckdb.connect(str(tmp_path / "g.duckdb"), read_only=True)
    try:
        assert con.sql("SELECT level FROM run_coverage WHERE run_id = 'r1' ORDER BY level").pl().equals(table.sort("level"))
        assert con.execute("SELECT count(*) FROM run_nothing").fetchall()[0][0] == 0
    finally:
        con.close()


def _decisions(n: int, kind: str = "test") -> pl.DataFrame:
    return pl.DataFrame({
        "record_kind": [kind] * n, "record_id": [f"{kind}{i}" for i in range(n)],
        "resident_id": [f"R{i % 7}" for i in range(n)], "method": pl.Series(["fuzzy"] * n, dtype=pl.Categorical),
        "score": [i / 7 for i in range(n)], "decision": pl.Series(["match"] * n, dtype=pl.Categorical),
        "explanation": pl.Series(["姓名相同"] * n, dtype=pl.Categorical)})


def _history(path) -> pl.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql("SELECT * FROM run_decisions ORDER BY run_id, record_kind, record_id").pl()
    finally:
        con.close()


def test_a_full_runs_decisions_are_its_copys_files_linked_and_an_incremental_runs_a_file_of_its_own(tmp_path):
    copy = tmp_path / "kept_links"
    copy.mkdir()
    full = [_decisions(5), _decisions(4, "vaccination")]
    for i, frame in enumerate(full):
        frame.write_parquet(copy / f"links-{i}.parquet")
    db = Database(DuckDBSettings(path=tmp_path / "state" / "g.duckdb"))
    try:
        assert _history_empty(db)
        db.record_run("r1", SINCE, {}, lambda: "{}", decisions=sorted(copy.glob("*.parquet")))
        db.record_run("r2", SINCE, {}, lambda: "{}", decisions=_decisions(2).with_columns(pl.lit(0.5).alias("score")))
        db.record_run("r3", SINCE, {}, lambda: "{}")  # no decisions given: nothing kept for it
    finally:
        db.close()
    kept = sorted((tmp_path / "state" / "run_decisions").glob("*.parquet"))
    assert [p.name.split("--")[0] for p in kept] == ["r1", "r1", "r2"]
    linked = {p.stat().st_ino for p in kept if p.name.startswith("r1")}
    assert linked == {p.stat().st_ino for p in copy.glob("*.parquet")}  # the same files, no byte copied
    for p in copy.glob("*.parquet"):
        p.unlink()  # the next refresh replaces the copy: the history keeps its files
    got = _history(tmp_path / "state" / "g.duckdb")
    want = pl.concat([
        *(f.with_columns(pl.lit("r1").alias("run_id")) for f in full),
        _decisions(2).with_columns(pl.lit(0.5).alias("score"), pl.lit("r2").alias("run_id"))],
        how="vertical_relaxed").with_columns(pl.col("method", "decision", "explanation").cast(pl.String))
    assert got.select(want.columns).equals(want.sort("run_id", "record_kind", "record_id"))


def _history_empty(db: Database) -> bool:
    db.record_run("r0", SINCE, {}, lambda: "{}")
    return db.fetch("SELECT * FROM run_decisions").height == 0 and "run_id" in db.fetch("SELECT * FROM run_decisions").columns


def test_files_of_a_record_that_failed_are_never_read_and_go_at_the_next_record(tmp_path):
    db = Database(DuckDBSettings(path=tmp_path / "g.duckdb"))
    try:
        db.record_run("r1", SINCE, {}, lambda: "{}", decisions=_decisions(3))

        def fails() -> str:
            raise RuntimeError("the record stops here")

        with pytest.raises(RuntimeError):
            db.record_run("r2", SINCE, {}, fails, decisions=_decisions(4))
        assert db.fetch("SELECT DISTINCT run_id FROM run_decisions")["run_id"].to_list() == ["r1"]
        assert db.fetch("SELECT count(*) AS n FROM run_decisions")["n"].item() == 3
        # a file a killed record was writing: never read, removed at the next record
        (tmp_path / "run_decisions" / ".r9--x.writing").write_bytes(b"PAR1 cut short")
        assert db.fetch("SELECT count(*) AS n FROM run_decisions")["n"].item() == 3
        db.record_run("r3", SINCE, {}, lambda: "{}", decisions=_decisions(1))
    finally:
        db.close()
    names = sorted(p.name.split("--")[0] for p in (tmp_path / "run_decisions").iterdir())
    assert names == ["r1", "r3"]  # r2's file and the one cut short removed
    assert _history(tmp_path / "g.duckdb")["run_id"].to_list() == ["r1"] * 3 + ["r3"]
    # a recorded run's file damaged on disk: the history cannot be read through the view, but refreshes go on
    (tmp_path / "run_decisions" / "r3--damaged.parquet").write_bytes(b"not parquet")
    db = Database(DuckDBSettings(path=tmp_path / "g.duckdb"))
    try:
        db.record_run("r4", SINCE, {}, lambda: "{}", decisions=_decisions(2))
        assert db.last_run_id() == "r4"
    finally:
        db.close()


def test_the_table_of_decisions_from_before_is_kept_under_the_view(tmp_path):
    path = tmp_path / "g.duckdb"
    con = duckdb.connect(str(path))
    old = _decisions(2).with_columns(pl.col("method", "decision", "explanation").cast(pl.String),
                                     pl.lit("r0").alias("run_id"))
    con.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, recorded_at TIMESTAMP, run JSON)")
    con.execute("INSERT INTO runs VALUES ('r0', now(), '{}')")
    con.execute("CREATE TABLE run_decisions AS SELECT * FROM old")
    con.close()
    db = Database(DuckDBSettings(path=path))
    try:
        db.record_run("r1", SINCE, {}, lambda: "{}", decisions=_decisions(1, "vaccination"))
    finally:
        db.close()
    got = _history(path)
    assert got["run_id"].to_list() == ["r0", "r0", "r1"]
    assert got.filter(pl.col("run_id") == "r0").select(old.columns).equals(old)


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


def test_the_call_lists_are_files_the_last_runs_kept_and_a_table_from_before_goes_to_files(tmp_path):
    """The short lists of the version before (a table of CALL_HISTORY) become the kept runs' files at the
    first record; from then on each run's list is a file and the oldest goes when the history is full."""
    path = tmp_path / "g.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, recorded_at TIMESTAMP, run JSON)")
    con.execute("CREATE TABLE untested_tally (since VARCHAR, resident_id VARCHAR, refreshes UINTEGER, "
                "first_listed TIMESTAMP)")
    for i, (run_id, (since, frame)) in enumerate(list(LISTS.items())[:2]):
        con.execute("INSERT INTO runs VALUES (?, TIMESTAMP '2022-05-20 08:00' + INTERVAL (?) HOUR, ?)",
                    [run_id, 2 * i, json.dumps({"parameters": {"since": since}})])
        tagged = frame.select(CALL_HISTORY).with_columns(pl.lit(run_id).alias("run_id"))  # noqa: F841
        con.execute("INSERT INTO run_call_list SELECT * FROM tagged" if i else
                    "CREATE TABLE run_call_list AS SELECT * FROM tagged")
    con.close()
    folder = tmp_path / "run_call_lists"
    db = Database(DuckDBSettings(path=path, keep_call_lists=2))
    try:
        assert db.previous_call_list().sort("resident_id", "reason").equals(  # from the table, before any record
            LISTS["r2"][1].select("resident_id", "reason", "list").sort("resident_id", "reason"))
        db.record_run("r3", "2022-05-27T00:00:00+08:00", {"call_list": LISTS["r3"][1]}, lambda: "{}")
        assert "run_call_list" not in dict(db.con.sql(
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall())
        assert sorted(p.name.split("--")[0] for p in folder.glob("*.parquet")) == ["r2", "r3"]
        (folder / "r9--x.parquet").write_bytes(b"")  # a run never recorded: not read, removed at the next record
        db.record_run("r4", SINCE, {"call_list": LISTS["r4"][1]}, lambda: "{}")
        assert sorted(p.name.split("--")[0] for p in folder.glob("*.parquet")) == ["r3", "r4"]
        kept = db.fetch("SELECT * FROM run_call_list ORDER BY run_id, resident_id, reason")
        assert kept.columns == [*CALL_HISTORY, "run_id"]
        assert kept.drop("run_id").equals(pl.concat([LISTS[r][1].select(CALL_HISTORY).sort("resident_id", "reason")
                                                     for r in ("r3", "r4")]))
        assert db.previous_call_list().sort("resident_id").equals(
            LISTS["r4"][1].select("resident_id", "reason", "list").sort("resident_id"))
        assert _counts(db, SINCE) == {"a1": 1}  # counted from r4's file (the tally of r1, r2 was not made here)
    finally:
        db.close()
