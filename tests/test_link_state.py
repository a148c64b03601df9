"""The stored linking decisions (flows.database): a full refresh's are its sorted copy's files, linked beside
the database, not rows inserted again; records linked again later override them, with a decision or none."""

from __future__ import annotations

import shutil

import duckdb
import polars as pl
import pytest

from flows.database import LINK_BASE, Database, new_generation
from flows.settings import DuckDBSettings
from transforms.decision import LINK_COLUMNS, compact_links

KEYS = ["record_kind", "record_id"]


def _records(folder, ids: list[str]) -> list:
    """The run's record Parquet as the spill writes it (keys, row_hash, _row)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "records.parquet"
    pl.DataFrame({"record_kind": ["test"] * len(ids), "record_id": ids,
                  "row_hash": pl.Series(range(len(ids)), dtype=pl.UInt64),
                  "_row": pl.Series(range(len(ids)), dtype=pl.UInt32)}).write_parquet(path)
    return [path]


def _decided(ids: list[str], resident: str, score: float = 12.0) -> pl.DataFrame:
    return compact_links(pl.DataFrame({
        "record_kind": ["test"] * len(ids), "record_id": ids, "resident_id": [resident] * len(ids),
        "method": ["id_exact"] * len(ids), "score": [score] * len(ids), "decision": ["match"] * len(ids),
        "explanation": ["证件号一致"] * len(ids)}).select(LINK_COLUMNS))


def _stored(db: Database, ids: list[str]) -> pl.DataFrame:
    keys = pl.DataFrame({"record_kind": ["test"] * len(ids), "record_id": ids})
    return db.decisions_on(keys).sort(KEYS)


def test_a_full_runs_decisions_are_its_copys_files_and_later_links_override_them(tmp_path):
    ids = [f"T{i:03d}" for i in range(10)]
    copy = tmp_path / "kept" / "links-a.parquet"
    copy.parent.mkdir()
    _decided(ids[:8], "R1").write_parquet(copy)  # T008 and T009 have no decision
    settings = DuckDBSettings(path=tmp_path / "state" / "g.duckdb")
    db = Database(settings)
    try:
        assert not db.open_link_state("key1")
        generation = new_generation()
        db.save_fresh_link_state(_records(tmp_path / "run1", ids), [copy], generation)
        assert db.link_generation() == generation
        base = list((tmp_path / "state" / LINK_BASE).iterdir())
        assert len(base) == 1 and base[0].stat().st_ino == copy.stat().st_ino  # linked, not copied
        assert db.count("link_decisions") == 0 and db.count("link_records") == 10
        got = _stored(db, ids)
        assert got["record_id"].to_list() == ids[:8] and set(got["resident_id"]) == {"R1"}
        assert got.columns == LINK_COLUMNS and got.schema["score"] == pl.Float64
        copy.unlink()  # the kept copy replaced by a later run: the state keeps its own link
        # T001 linked again to another resident, T002 linked again with no decision now, T009 given one
        again = pl.DataFrame({"record_kind": ["test"] * 3, "record_id": ["T001", "T002", "T009"],
                              "row_hash": pl.Series([101, 102, 109], dtype=pl.UInt64)})
        db.save_link_state(again, pl.concat([_decided(["T001"], "R2", 10.0), _decided(["T009"], "R3")]))
        db.save_link_state(again.head(1), _decided(["T001"], "R2", 10.0))  # the same record overridden again
        assert db.count("link_overridden") == 3
        # A record new to the state (a two-hour batch's) overrides nothing: only records stored before are kept.
        db.save_link_state(pl.DataFrame({"record_kind": ["test"], "record_id": ["T010"],
                                         "row_hash": pl.Series([110], dtype=pl.UInt64)}), _decided(["T010"], "R4"))
        assert db.count("link_overridden") == 3 and db.count("link_records") == 11
        assert _stored(db, ["T010"])["resident_id"].to_list() == ["R4"]
        got = _stored(db, ids)
        assert got.select("record_id", "resident_id").rows() == [
            ("T000", "R1"), ("T001", "R2"), ("T003", "R1"), ("T004", "R1"), ("T005", "R1"), ("T006", "R1"),
            ("T007", "R1"), ("T009", "R3")]
        in_order = db.stored_links(_records(tmp_path / "run2", list(reversed(ids))), lambda f: f)
        assert in_order["record_id"].to_list() == got["record_id"].to_list()
        assert in_order.filter(pl.col("record_id") == "T001")["score"].item() == 10.0
    finally:
        db.close()
    # The state folder moved whole: the base is found beside the database where it is now.
    shutil.move(tmp_path / "state", tmp_path / "moved")
    db = Database(DuckDBSettings(path=tmp_path / "moved" / "g.duckdb"))
    try:
        assert db.open_link_state("key1")
        assert _stored(db, ids).height == 8
        # A new roster or settings: the state emptied, its files removed.
        assert not db.open_link_state("key2")
        assert _stored(db, ids).height == 0
        assert list((tmp_path / "moved" / LINK_BASE).iterdir()) == []
    finally:
        db.close()


def test_a_fresh_save_that_fails_leaves_the_state_and_its_files_go_at_the_next_save(tmp_path):
    ids = ["T1", "T2"]
    first, second = tmp_path / "links-a.parquet", tmp_path / "links-b.parquet"
    _decided(ids, "R1").write_parquet(first)
    _decided(ids, "R2").write_parquet(second)
    db = Database(DuckDBSettings(path=tmp_path / "state" / "g.duckdb"))
    try:
        db.open_link_state("key1")
        db.save_fresh_link_state(_records(tmp_path / "run1", ids), [first], new_generation())
        before = db.link_generation()
        with pytest.raises(duckdb.IOException):  # records' Parquet missing: the insert fails inside the transaction
            db.save_fresh_link_state([tmp_path / "no_such.parquet"], [second], new_generation())
        assert db.link_generation() == before
        assert set(_stored(db, ids)["resident_id"]) == {"R1"}
        assert len(list((tmp_path / "state" / LINK_BASE).iterdir())) == 2  # the failed save's link is left
        db.save_link_state(pl.DataFrame({"record_kind": ["test"], "record_id": ["T2"],
                                         "row_hash": pl.Series([7], dtype=pl.UInt64)}), _decided(["T2"], "R3"))
        assert _stored(db, ids)["resident_id"].to_list() == ["R1", "R3"]
        # The next full refresh (a new roster): the old base, the failed save's file and the override go.
        assert not db.open_link_state("key2")
        assert list((tmp_path / "state" / LINK_BASE).iterdir()) == []
        db.save_fresh_link_state(_records(tmp_path / "run2", ids), [second], new_generation())
        assert _stored(db, ids)["resident_id"].to_list() == ["R2", "R2"]
        assert db.count("link_overridden") == 0 and db.count("link_decisions") == 0
        assert len(list((tmp_path / "state" / LINK_BASE).iterdir())) == 1
    finally:
        db.close()


def _fresh_state(tmp_path, ids: list[str]) -> Database:
    """An open database whose state is a full refresh's: decisions on ids (its copy's file), all to R1."""
    copy = tmp_path / "links-a.parquet"
    _decided(ids, "R1").write_parquet(copy)
    db = Database(DuckDBSettings(path=tmp_path / "state" / "g.duckdb"))
    db.open_link_state("key1")
    db.save_fresh_link_state(_records(tmp_path / "run1", ids), [copy], new_generation())
    return db


def test_a_database_copied_without_its_decisions_files_links_everything_again(tmp_path, caplog):
    ids = ["T1", "T2"]
    _fresh_state(tmp_path, ids).close()
    (tmp_path / "alone").mkdir()
    shutil.copy(tmp_path / "state" / "g.duckdb", tmp_path / "alone" / "g.duckdb")
    db = Database(DuckDBSettings(path=tmp_path / "alone" / "g.duckdb"))
    try:
        assert not db.open_link_state("key1")  # as a new roster: nothing stored is used
        assert "missing beside the database" in caplog.text
        assert _stored(db, ids).height == 0 and db.count("link_records") == 0
    finally:
        db.close()


def test_records_to_link_are_the_new_the_retyped_and_the_judged_and_only_the_stored_are_looked_for(tmp_path):
    db = _fresh_state(tmp_path, ["T0", "T1", "T2", "T3"])
    try:
        # The next export: T1 typed differently (another row_hash), T2 judged by a worker, T4 and T5 new.
        now = tmp_path / "run2" / "records.parquet"
        now.parent.mkdir()
        pl.DataFrame({"record_kind": ["test"] * 6, "record_id": ["T0", "T1", "T2", "T3", "T4", "T5"],
                      "row_hash": pl.Series([0, 91, 2, 3, 4, 5], dtype=pl.UInt64),
                      "_row": pl.Series(range(6), dtype=pl.UInt32)}).write_parquet(now)
        judged = pl.DataFrame({"record_kind": ["test"], "record_id": ["T2"]})
        todo = db.records_to_link([now], judged).sort("record_id")
        assert todo.select("record_id", "row_hash", "_row", "stored").rows() == [
            ("T1", 91, 1, True), ("T2", 2, 2, True), ("T4", 4, 4, False), ("T5", 5, 5, False)]
        assert db.records_to_link([now], judged.clear())["record_id"].sort().to_list() == ["T1", "T4", "T5"]
        # Stored again with only the stored ones looked for: the others are added, those replaced overridden.
        db.save_link_state(todo.select(*KEYS, "row_hash"), pl.concat([_decided(["T1", "T4"], "R2")]),
                           stored=todo.filter(pl.col("stored")).select(KEYS))
        assert db.count("link_records") == 6 and db.count("link_overridden") == 2
        got = _stored(db, ["T0", "T1", "T2", "T3", "T4", "T5"])
        assert got.select("record_id", "resident_id").rows() == [
            ("T0", "R1"), ("T1", "R2"), ("T3", "R1"), ("T4", "R2")]  # T2 linked again with no decision now
        assert db.records_to_link([now], judged.clear()).height == 0  # all of them held as they are now
        # Nothing stored among them (a two-hour batch's new records): nothing is looked for, all are added.
        db.save_link_state(pl.DataFrame({"record_kind": ["test"], "record_id": ["T6"],
                                         "row_hash": pl.Series([6], dtype=pl.UInt64)}), _decided(["T6"], "R3"),
                           stored=pl.DataFrame(schema={"record_kind": pl.String, "record_id": pl.String}))
        assert db.count("link_records") == 7 and db.count("link_overridden") == 2
        assert _stored(db, ["T6"])["resident_id"].to_list() == ["R3"]
    finally:
        db.close()
