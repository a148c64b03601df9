"""The inbox refresh in-process: loads once by content, archives after commit, recovers from failures."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.readers import InputError

pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


def write_campaign(root: Path) -> Path:
    cfg = root / "campaign.toml"
    cfg.write_text(
        '[round]\nsince = "2022-05-18T18:00"\nas_of = "2022-05-20T18:00"\n\n'
        '[inbox]\npath = "inbox"\narchive = "archive"\nsettle_seconds = 0\n\n'
        '[paths]\nout = "out"\nstate = "state"\n',
        encoding="utf-8",
    )
    for source in ("roster", "tests", "vaccinations"):
        (root / "inbox" / source).mkdir(parents=True)
    return cfg


def drop(root: Path, source: str, src: Path, name: str | None = None) -> Path:
    target = root / "inbox" / source / (name or src.name)
    shutil.copyfile(src, target)
    old = time.time() - 60
    os.utime(target, (old, old))
    return target


def loaded(root: Path) -> list[tuple]:
    con = duckdb.connect(str(root / "state" / "gridsweep.duckdb"), read_only=True)
    try:
        return con.execute("SELECT source, name, rows FROM inbox_files ORDER BY loaded_at").fetchall()
    finally:
        con.close()


@pytest.fixture
def street(tmp_path, prefect_server, monkeypatch):
    monkeypatch.delenv("GRIDSWEEP_STATE_DIR", raising=False)
    cfg = write_campaign(tmp_path)
    return tmp_path, cfg


def test_loads_once_archives_and_skips_unchanged(street):
    from flows.inbox import refresh_inbox

    root, cfg = street
    drop(root, "roster", SAMPLES / "roster.csv")
    drop(root, "tests", SAMPLES / "tests.csv")
    drop(root, "vaccinations", SAMPLES / "vaccinations.csv")
    first = refresh_inbox(str(cfg))
    assert first["changed"] and len(first["new_files"]) == 3
    assert not any(any((root / "inbox" / s).iterdir()) for s in ("roster", "tests", "vaccinations"))
    assert len(list((root / "archive").rglob("*.csv"))) == 3
    run = json.loads((root / "out" / "run.json").read_text(encoding="utf-8"))
    assert run["accounting"]["tests"]["rows_read"] == pl.read_csv(SAMPLES / "tests.csv", encoding="gb18030",
                                                                  infer_schema=False).height

    # The same export again, under another name: archived, not loaded.
    drop(root, "tests", SAMPLES / "tests.csv", "tests_again.csv")
    second = refresh_inbox(str(cfg))
    assert second["duplicate_files"] == ["tests_again.csv"] and not second["new_files"]
    assert [r[1] for r in loaded(root)] == ["roster.csv", "tests.csv", "vaccinations.csv"]
    assert second["run_id"] == first["run_id"]  # nothing changed: the previous run's sheets stand
    assert "no new exports" in second["message"]

    # A worker sends the book back with an outcome: loaded, archived, and the refresh is not skipped.
    from openpyxl import load_workbook

    calls = pl.read_csv(root / "out" / "call_list.csv", infer_schema=False).filter(pl.col("list") == "call")
    resident, worker = calls["resident_id"][0], calls["grid_worker"][0]
    book_path = next(p for p in (root / "out" / "sheets").rglob("*.xlsx") if p.name.startswith(worker))
    wb = load_workbook(book_path)
    ws = wb["电话通知"]
    header = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        if row[header.index("人员编号")].value == resident:
            row[header.index("联系结果")].value = "外出不在本地"
    (root / "inbox" / "returns").mkdir(exist_ok=True)
    wb.save(root / "inbox" / "returns" / book_path.name)
    third = refresh_inbox(str(cfg))
    assert third["run_id"] != first["run_id"] and third["returned"]["new_call_attempts"] == 1
    assert not any((root / "inbox" / "returns").iterdir())
    assert list((root / "archive" / "returns").rglob("*.xlsx"))
    after = pl.read_csv(root / "out" / "call_list.csv", infer_schema=False)
    assert after.filter((pl.col("resident_id") == resident) & (pl.col("reason") == "untested")).height == 0


def test_bad_file_fails_the_run_and_stays_in_the_inbox(street):
    from flows.inbox import refresh_inbox

    root, cfg = street
    drop(root, "roster", SAMPLES / "roster.csv")
    drop(root, "tests", SAMPLES / "tests.csv")
    first = refresh_inbox(str(cfg))
    before = (root / "out" / "run.json").read_bytes()

    bad = root / "bad_tests.csv"
    bad.write_text("采样编号,采样时间\nT1,2022-05-20 10:00\n", encoding="utf-8")
    dropped = drop(root, "tests", bad)
    good = root / "more_tests.csv"
    rows = pl.read_csv(SAMPLES / "tests.csv", encoding="gb18030", infer_schema=False).head(5).with_columns(
        (pl.col("采样编号") + "-B").alias("采样编号"))
    rows.write_csv(good)
    good_dropped = drop(root, "tests", good)
    with pytest.raises(InputError, match="姓名"):
        refresh_inbox(str(cfg))
    assert dropped.exists() and good_dropped.exists()  # the inbox is intact: nothing was loaded
    assert (root / "out" / "run.json").read_bytes() == before
    assert len(loaded(root)) == 2

    dropped.unlink()  # the data staff fix it: the next refresh recovers
    third = refresh_inbox(str(cfg))
    assert third["new_files"] == ["more_tests.csv"] and third["run_id"] != first["run_id"]
    assert len(loaded(root)) == 3


def test_crash_after_commit_before_archive_does_not_load_twice(street, monkeypatch):
    import flows.inbox as inbox

    root, cfg = street
    drop(root, "roster", SAMPLES / "roster.csv")
    tests_file = drop(root, "tests", SAMPLES / "tests.csv")

    def crash(f, archive):
        raise OSError("power cut")

    monkeypatch.setattr(inbox.archive_file, "fn", crash)
    monkeypatch.setattr(inbox.archive_file, "retries", 0)
    with pytest.raises(OSError, match="power cut"):
        inbox.refresh_inbox(str(cfg))
    assert tests_file.exists() and len(loaded(root)) == 2
    monkeypatch.undo()
    monkeypatch.delenv("GRIDSWEEP_STATE_DIR", raising=False)
    summary = inbox.refresh_inbox(str(cfg))
    assert sorted(summary["duplicate_files"]) == ["roster.csv", "tests.csv"]
    assert len(loaded(root)) == 2 and not tests_file.exists()
    assert (root / "out" / "call_list.csv").exists()


def test_a_second_refresh_waits_for_the_lock(tmp_path):
    import threading

    from flows.inbox import refresh_lock

    held, release = threading.Event(), threading.Event()

    def holder():
        with refresh_lock(tmp_path):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(TimeoutError, match="refresh.lock"), refresh_lock(tmp_path, timeout=1.5):
            pass
    finally:
        release.set()
        t.join()
    with refresh_lock(tmp_path, timeout=1.5):  # free again once the first refresh is done
        pass


def test_stored_rows_are_read_a_slice_at_a_time_in_the_order_their_files_and_lines_came(tmp_path):
    """The inbox refresh reads weeks of stored exports from the database a slice at a time, not whole."""
    from flows.database import Database
    from flows.inbox import InboxFile, known_hashes, read_new_files, store_files
    from flows.readers import file_hash
    from flows.settings import load_campaign
    from flows.sources import StoredTable

    settings, _ = load_campaign(write_campaign(tmp_path))
    rows = pl.read_csv(SAMPLES / "tests.csv", encoding="gb18030", infer_schema=False)
    files = []
    for name, part in (("b.csv", rows.head(11)), ("a.csv", rows.slice(11, 6))):
        path = tmp_path / name
        part.write_csv(path)
        files.append(InboxFile("tests", path, file_hash(path)))
    db = Database(settings.duckdb)
    try:
        known_hashes(db)  # makes the store's tables
        store_files.fn(db, files, read_new_files.fn(files))
    finally:
        db.close()
    table = StoredTable(settings, "tests")
    assert table.rows_hint() == 17  # what flows.sources.slice_size reads
    slices = list(table.slices(4))
    assert [s.height for s in slices] == [4, 4, 4, 4, 1] and table.rows == 17
    got = pl.concat(slices)
    counts = {files[0].sha256: 11, files[1].sha256: 6}
    order = [files[1].sha256, files[0].sha256]  # by file as they came (dropped together: by name), then line
    assert got["_file"].to_list() == [sha for sha in order for _ in range(counts[sha])]
    assert got["_line"].to_list() == [line for sha in order for line in range(2, 2 + counts[sha])]
    assert sorted(got["record_id"].to_list()) == sorted(rows.head(17)[rows.columns[0]].to_list())
    # A file that comes later is read after them, whatever its name; a refresh that read the first two reads
    # on from there, and one whose files are no longer the first stored reads everything.
    from flows.sources import StoredEnd, StoredSource

    later = tmp_path / "0.csv"
    rows.slice(17, 5).write_csv(later)
    files.append(InboxFile("tests", later, file_hash(later)))
    db = Database(settings.duckdb)
    try:
        store_files.fn(db, files[2:], read_new_files.fn(files[2:]))
    finally:
        db.close()
    assert pl.concat(StoredTable(settings, "tests").slices(100))["_file"].to_list()[-5:] == [files[2].sha256] * 5
    assert table.end() == StoredEnd(order)
    on = StoredSource(settings, "tests").grown(table.end().json())
    assert on.rows_hint() == 5
    added = pl.concat(list(on.slices(100)))
    assert added["_file"].to_list() == [files[2].sha256] * 5 and on.end() == StoredEnd([*order, files[2].sha256])
    assert StoredSource(settings, "tests").grown(StoredEnd(order[::-1]).json()) is None
