"""Incremental linking: a refresh after two more hours of records links only the new ones and ends with
exactly the outputs of a full refresh of everything from scratch."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import polars as pl
import pytest
from helpers import matches, rows_sorted, sorted_csv, sorted_matches

from flows.generate import write_synthetic
from flows.readers import read_table
from flows.settings import load_settings
from flows.spare_files import wait_retired
from transforms.contract import TESTS, VACCINATIONS
from transforms.synthetic import generate

pytestmark = pytest.mark.slow


def test_incremental_refresh_equals_a_full_refresh(tmp_path, prefect_server):
    from flows.refresh import refresh

    data = tmp_path / "data"
    write_synthetic(generate(3000, seed=23), data)
    tests = read_table(data / "tests.csv", TESTS).frame.drop("_line")
    first_part = tmp_path / "tests_morning.csv"
    tests.head(tests.height * 6 // 10).write_csv(first_part)
    full = tmp_path / "tests_all.csv"
    tests.write_csv(full)

    def settings(tests_path, name):
        return load_settings(data / "campaign.toml", tests=str(tests_path), out=str(tmp_path / name / "out"),
                             db=str(tmp_path / name / "g.duckdb"))

    morning = refresh(settings(first_part, "incremental"))
    incremental = refresh(settings(full, "incremental"))
    scratch = refresh(settings(full, "scratch"))

    new_rows = tests.height - tests.height * 6 // 10
    linked_now = incremental.linking["records_linked_now"]
    assert 0 < linked_now <= new_rows  # a few new rows are quarantined before linking
    assert incremental.linking["records_reused"] == incremental.linking["records"] - linked_now
    assert scratch.linking["records_linked_now"] == scratch.linking["records"]
    # The morning's records, in the very parts it linked, were not looked up in the stored state again.
    assert incremental.linking["records_known_unchanged"] == morning.linking["records"]
    assert scratch.linking["records_known_unchanged"] == 0
    # The unchanged files were not read again (flows.loaded_sources).
    assert {k: v["unchanged_since_last_load"] for k, v in incremental.inputs.items()} == {
        "roster": True, "tests": False, "vaccinations": True}
    # The export that grew at its end was read on from where the morning's ended (flows.readers.grown_table).
    assert incremental.inputs["tests"]["rows_taken_from_last_load"] == tests.height * 6 // 10
    assert scratch.inputs["tests"]["rows_taken_from_last_load"] == 0
    # The same roster: its households taken from the database, not grouped again.
    assert {"households", "keep_households"} <= set(scratch.linking["sql_seconds"])
    assert not {"households", "keep_households"} & set(incremental.linking["sql_seconds"])
    # and its blocking keys (unique IDs, usable phones and where they live, usable names) likewise
    roster_keys = {"unique_residents", "phone_keys", "phone_households", "name_keys", "keep_roster_keys"}
    assert roster_keys <= set(scratch.linking["sql_seconds"]) and not roster_keys & set(incremental.linking["sql_seconds"])
    # What the morning's refresh kept (the roster's facts, the database, the kept decisions and more) was asked
    # of the disk once the tests were in (flows.state_prefetch); a first refresh has nothing to ask for.
    prefetched = incremental.state_prefetch
    assert prefetched["files"] > 3 and prefetched["bytes_asked"] > 0 and prefetched["seconds"] is not None
    assert scratch.state_prefetch["files"] == 0

    a, b = tmp_path / "incremental" / "out", tmp_path / "scratch" / "out"
    assert sorted_matches(a).equals(sorted_matches(b))
    # Only 'new since the last refresh' differs: the incremental side had a refresh before.
    assert sorted_csv(a / "call_list.csv", ["new_since_last"]).equals(sorted_csv(b / "call_list.csv", ["new_since_last"]))
    assert sorted_csv(a / "coverage.csv").equals(sorted_csv(b / "coverage.csv"))
    run_a = json.loads((a / "run.json").read_text(encoding="utf-8"))
    run_b = json.loads((b / "run.json").read_text(encoding="utf-8"))
    assert run_a["linking"]["decisions"] == run_b["linking"]["decisions"]
    # The decisions' new parts were written by a process of its own from the end of the link on
    # (flows.match_parts), and moved into the output: nothing of them is left beside the output.
    assert run_a["timings"]["matches_csv_aside"] > 0 and "write_matches_wait" in run_a["timings"]
    assert not list(a.parent.glob(".out.matches-*")) and not list(b.parent.glob(".out.matches-*"))
    # The sorted decisions: the morning's copy with those made now merged in (flows.kept_links).
    assert incremental.linking["sorted_decisions_from"] == "last_copy"
    assert scratch.linking["sorted_decisions_from"] == "linked_now"


def test_the_kept_decisions_are_used_only_for_the_records_they_were_made_on(tmp_path, prefect_server):
    """The sorted copy of the last refresh's decisions (flows.kept_links) stands for them only when that
    refresh's records are this one's first; records added after it that were linked before take the stored
    decisions; anything else fetches them from the database. Each time, the decisions a refresh from
    scratch makes: a record's decision depends on nothing but the record, the roster and
    the settings, so they are the first refresh's on the records the file holds."""
    from flows.refresh import refresh

    data = tmp_path / "data"
    write_synthetic(generate(500, seed=37), data)
    tests = read_table(data / "tests.csv", TESTS).frame.drop("_line")
    for name, frame in {"all": tests, "morning": tests.head(tests.height // 2)}.items():
        frame.write_csv(tmp_path / f"{name}.csv")

    def run(name: str, state: str):
        report = refresh(load_settings(data / "campaign.toml", tests=str(tmp_path / f"{name}.csv"),
                                       out=str(tmp_path / state / "out"), db=str(tmp_path / state / "g.duckdb")))
        return report, matches(tmp_path / state / "out")

    first, scratch_all = run("all", "kept")  # from scratch
    assert first.linking["sorted_decisions_from"] == "linked_now"
    linked = scratch_all.filter(pl.col("record_kind") == "test")["record_id"]
    gone = linked[linked.len() // 3]  # a linked record in the middle of the export
    tests.filter(pl.col("record_id") != gone).write_csv(tmp_path / "middle_removed.csv")
    steps = [("morning", "database"),  # half the records: the last copy holds records this one has not
             ("all", "last_copy"),  # the other half back: linked before, so their stored decisions are taken
             ("middle_removed", "database")]  # a record gone from the middle
    for name, source in steps:
        report, kept = run(name, "kept")
        assert report.linking["sorted_decisions_from"] == source, name
        assert report.linking["records_linked_now"] == 0, name  # every record's decision was stored
        ids = pl.read_csv(tmp_path / f"{name}.csv", infer_schema=False)["record_id"]
        expected = scratch_all.filter((pl.col("record_kind") != "test") | pl.col("record_id").is_in(ids.implode()))
        # the same rows (each of the copy's files in record order: see the test of its files below)
        assert rows_sorted(kept).equals(rows_sorted(expected)), name
    assert kept.height == scratch_all.height - 1


def test_a_new_roster_relinks_everything(tmp_path, prefect_server):
    from flows.refresh import refresh

    data = tmp_path / "data"
    write_synthetic(generate(1500, seed=29), data)
    s = load_settings(data / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "g.duckdb"))
    refresh(s)
    roster = pl.read_csv(data / "roster.csv", infer_schema=False)
    changed = tmp_path / "roster_v2.csv"
    roster.with_columns(pl.when(pl.col("人员编号") == roster["人员编号"][0]).then(pl.lit("18612345678"))
                        .otherwise(pl.col("联系电话")).alias("联系电话")).write_csv(changed, include_bom=True)
    again = refresh(load_settings(data / "campaign.toml", roster=str(changed), out=str(tmp_path / "out"),
                                  db=str(tmp_path / "g.duckdb")))
    assert again.linking["records_reused"] == 0 and again.linking["records_linked_now"] == again.linking["records"]
    assert again.inputs["roster"]["unchanged_since_last_load"] is False
    # The households grouped again from the new roster: the new phone is in its household's list.
    assert {"keep_households", "keep_roster_keys"} <= set(again.linking["sql_seconds"])
    import duckdb
    with duckdb.connect(str(tmp_path / "g.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM link_households WHERE list_contains(household_phones, '18612345678')"
                       ).fetchall()[0][0] == 1
        # and the phone is a blocking key of the roster kept now
        assert con.sql("SELECT count(*) FROM link_kept_phone_keys WHERE phone_norm = '18612345678'").fetchall()[0][0] == 1


def test_new_linking_code_relinks_everything(tmp_path, prefect_server, monkeypatch):
    """Decisions kept by an earlier release are not reused once the comparison or decision code changed."""
    import flows.refresh
    from flows.refresh import refresh

    data = tmp_path / "data"
    write_synthetic(generate(800, seed=31), data)
    s = load_settings(data / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "g.duckdb"))
    refresh(s)
    same = refresh(s)
    assert same.linking["records_linked_now"] == 0 < same.linking["records_reused"]
    monkeypatch.setattr(flows.refresh, "linking_code_fingerprint", lambda: "another release")
    again = refresh(s)
    assert again.linking["records_reused"] == 0 and again.linking["records_linked_now"] == again.linking["records"]


def test_unchanged_workbooks_are_not_written_again(tmp_path, prefect_server):
    from flows.refresh import refresh

    data = tmp_path / "data"
    write_synthetic(generate(1500, seed=31), data)
    s = load_settings(data / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "g.duckdb"))
    first = refresh(s)
    books = sorted((tmp_path / "out" / "sheets").rglob("*.xlsx"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in books}
    csvs = sorted((tmp_path / "out" / "quarantine").glob("*.csv"))
    csvs_before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in csvs}
    second = refresh(s)
    assert first.lists["workbooks_written"] == len(books) + first.lists["community_workbooks"]
    assert second.lists["workbooks_written"] == 0
    assert second.lists["workbooks_reused"] == first.lists["workbooks_written"]
    for p in books:  # the very same files, carried over
        assert (p.read_bytes(), p.stat().st_mtime_ns) == before[p]
    # The quarantined rows' workbooks too, while the source's quarantined rows are the same.
    quarantined = sorted((tmp_path / "out" / "quarantine").glob("*.xlsx"))
    assert first.lists["quarantine_books_written"] == len(quarantined) >= 2
    assert second.lists["quarantine_books_written"] == 0
    # and their CSVs: the same files
    assert first.lists["quarantine_csvs_written"] == len(csvs) == len(quarantined)
    assert second.lists["quarantine_csvs_written"] == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in csvs} == csvs_before
    quarantined += csvs
    q_before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in quarantined}

    # One test record more: only the books whose rows change are written.
    tests = read_table(data / "tests.csv", TESTS).frame.drop("_line")
    calls = pl.read_csv(tmp_path / "out" / "call_list.csv", infer_schema=False).filter(
        (pl.col("reason") == "untested") & (pl.col("list") == "call"))
    person = pl.read_csv(data / "roster.csv", infer_schema=False).filter(
        pl.col("人员编号") == calls["resident_id"][0]).row(0, named=True)
    extra = pl.DataFrame([{c: None for c in tests.columns} | {
        "record_id": "T99999999999", "name": person["姓名"], "id_number": person["证件号码"],
        "phone": person["联系电话"], "sampled_at": "2022-05-20 10:00:00"}])
    more = tmp_path / "tests_more.csv"
    pl.concat([tests, extra], how="vertical_relaxed").write_csv(more)
    third = refresh(load_settings(data / "campaign.toml", tests=str(more), out=str(tmp_path / "out"),
                                  db=str(tmp_path / "g.duckdb")))
    assert third.linking["records_linked_now"] == 1
    assert third.lists["quarantine_books_written"] == third.lists["quarantine_csvs_written"] == 0  # not quarantined
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in quarantined} == q_before
    assert 1 <= third.lists["workbooks_written"] < first.lists["workbooks_written"] / 2

    # Two hours later (the few records dated in between now count): only the books whose rows or figures changed are written; the others keep
    # their file (and the time it was made), and hold what a refresh from scratch would put in them.
    sheets, pages = tmp_path / "out" / "sheets", tmp_path / "out" / "print"
    before = {p: p.read_bytes() for p in sheets.rglob("*.xlsx")}
    pages_before = {p: p.read_text(encoding="utf-8") for p in pages.rglob("*.html")}
    communities = tmp_path / "out" / "community"
    communities_before = {p: p.read_bytes() for p in communities.rglob("*.xlsx")}
    later = dict(tests=str(more), as_of="2022-05-20T20:00")
    tree = tmp_path / ".out.spare" / "tree"  # the output before the last, emptied where its files were

    def pooled() -> dict[str, int]:
        return {p.relative_to(tree).as_posix(): p.stat().st_ino for p in tree.rglob("*")
                if p.is_file() and p.name != ".spare.json"}

    wait_retired(tmp_path / "out")  # the third run's retirer, a process of its own, has emptied the second's output
    pool = pooled()
    loose = {p.stat().st_ino for p in (tmp_path / ".out.spare" / "loose").iterdir()}  # unclaimed before, emptied
    fourth = refresh(load_settings(data / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "g.duckdb"),
                                   **later))
    fresh = refresh(load_settings(data / "campaign.toml", out=str(tmp_path / "fresh"),
                                  db=str(tmp_path / "fresh.duckdb"), **later))
    kept = [p for p in sorted(sheets.rglob("*.xlsx")) if before.get(p) == p.read_bytes()]
    written = [p for p in sorted(sheets.rglob("*.xlsx")) if before.get(p) != p.read_bytes()]
    assert kept and written and fourth.lists["workbooks_written"] < fresh.lists["workbooks_written"] / 2
    # What was written went into the emptied files of the output before the last (flows.spare_files), each
    # at its own place, not new ones; the pool holds nothing of anyone, and no earlier output is left beside this.
    out = tmp_path / "out"
    written_now = written + [p for p in sorted(pages.rglob("*.html")) if pages_before.get(p) != p.read_text(encoding="utf-8")]
    written_now += [p for p in sorted(communities.rglob("*.xlsx")) if communities_before.get(p) != p.read_bytes()]
    in_pool = [p for p in written_now if p.relative_to(out).as_posix() in pool]
    assert all(p.stat().st_ino == pool[p.relative_to(out).as_posix()] for p in in_pool)
    from_loose = [p for p in written_now if p.stat().st_ino in loose]
    assert in_pool or from_loose
    assert fourth.lists["files_from_spares"] == len(in_pool) + len(from_loose)
    wait_retired(out)
    assert pooled() and all(p.stat().st_size == 0 for p in tree.rglob("*") if p.is_file() and p.name != ".spare.json")
    assert fourth.lists["spares_unclaimed"] == 0
    assert not list(tmp_path.glob(".out.previous-*")) and not list(tmp_path.glob(".out.staging-*"))
    for p in kept + written:
        mine, theirs = _cells(p), _cells(tmp_path / "fresh" / p.relative_to(tmp_path / "out"))
        assert _as_of(mine) == ("2022-05-20 18:00" if p in kept else "2022-05-20 20:00")
        assert _as_of(theirs) == "2022-05-20 20:00"
        assert _without_as_of(mine) == _without_as_of(theirs), p.name
    # A book written again copies the sheets that did not change from the last one: every row sheet the very
    # bytes a fresh book holds (only the summary shows the time).
    assert fourth.lists["sheets_kept_in_books_written"] > 0
    for p in written:
        with zipfile.ZipFile(p) as mine, zipfile.ZipFile(tmp_path / "fresh" / p.relative_to(tmp_path / "out")) as theirs:
            assert mine.namelist() == theirs.namelist()
            rows = [n for n in mine.namelist() if n.startswith("xl/worksheets/") and n != "xl/worksheets/sheet1.xml"]
            assert rows and all(mine.read(n) == theirs.read(n) for n in rows), p.name
    # The printable pages likewise: a page kept holds what a fresh one shows but its time.
    kept = [p for p in sorted(pages.rglob("*.html")) if pages_before.get(p) == p.read_text(encoding="utf-8")]
    assert kept and fourth.lists["print_pages_reused"] == len(kept)
    assert fourth.lists["print_pages_written"] + len(kept) == fresh.lists["print_pages_written"] == len(pages_before)
    for p in sorted(pages.rglob("*.html")):
        mine, theirs = p.read_text(encoding="utf-8"), (tmp_path / "fresh" / p.relative_to(tmp_path / "out")).read_text(
            encoding="utf-8")
        assert ("数据截至 2022-05-20 18:00" in mine) == (p in kept) and "数据截至 2022-05-20 20:00" in theirs
        assert mine.replace("2022-05-20 18:00", "2022-05-20 20:00") == theirs, p.name
    # The quarantined rows' files, carried over or written again, hold what a refresh from scratch writes.
    for p in sorted((out / "quarantine").iterdir()):
        theirs = tmp_path / "fresh" / "quarantine" / p.name
        if p.suffix == ".csv":
            assert p.read_bytes() == theirs.read_bytes(), p.name
        else:  # a zip's entries carry the time they were written
            assert _cells(p) == _cells(theirs), p.name


def _cells(path) -> dict[str, list[tuple]]:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    try:
        return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets}
    finally:
        book.close()


def _as_of(cells: dict[str, list[tuple]]) -> str:
    from transforms.sheets import AS_OF_LABEL

    found = {row[i + 1] for rows in cells.values() for row in rows for i in range(len(row) - 1) if row[i] == AS_OF_LABEL}
    assert len(found) == 1, found
    return found.pop()


def _without_as_of(cells: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    from transforms.sheets import AS_OF_LABEL

    return {name: [row for row in rows if AS_OF_LABEL not in row] for name, rows in cells.items()}


def test_linking_in_small_batches_gives_the_same_links(tmp_path, prefect_server):
    """Batches only bound memory: a refresh that blocks 400 records at a time decides exactly as one that
    blocks them all at once, and changing the batch size does not throw the stored decisions away."""
    from dataclasses import replace

    from flows.refresh import refresh

    data = tmp_path / "data"
    write_synthetic(generate(2000, seed=29), data)

    def settings(name, per_batch):
        s = load_settings(data / "campaign.toml", out=str(tmp_path / name / "out"), db=str(tmp_path / name / "g.duckdb"))
        return replace(s, blocking=replace(s.blocking, records_per_batch=per_batch, pending_per_batch=per_batch))

    whole = refresh(settings("whole", 10_000_000))
    batched = refresh(settings("batched", 400))
    assert whole.linking["record_batches"] == 2  # one per kind of record (tests, vaccinations)
    per_kind = [whole.linking["decisions"][kind]["records"] for kind in ("test", "vaccination")]
    assert batched.linking["record_batches"] == sum(-(-n // 400) for n in per_kind) > 5
    # The records the exact stage left are gathered over a kind's batches and blocked 400 at a time: fewer
    # passes over the roster than batches of records.
    assert whole.linking["blocking_batches"] == 2
    pending = batched.linking["pending_records"]
    assert -(-pending // 400) <= batched.linking["blocking_batches"] <= -(-pending // 400) + 1
    assert batched.linking["blocking_batches"] < batched.linking["record_batches"]
    for key in ("exact_stage_links", "pending_records", "candidate_pairs", "decisions"):
        assert whole.linking[key] == batched.linking[key], key
    a, b = tmp_path / "whole" / "out", tmp_path / "batched" / "out"
    assert sorted_matches(a).equals(sorted_matches(b))
    assert sorted_csv(a / "call_list.csv").equals(sorted_csv(b / "call_list.csv"))
    again = refresh(settings("batched", 1000))
    assert again.linking["records_linked_now"] == 0 and again.linking["records_reused"] == again.linking["records"]


def test_ruling_only_the_changed_residents_equals_ruling_everyone(tmp_path, prefect_server, monkeypatch):
    """Two copies of one state after a morning refresh and some call outcomes: the refresh that rules only the
    residents whose records or outcomes changed (flows.kept_rules), a few of them at a time, publishes exactly
    what the one that rules the whole roster at once does, down to the order of the rows and the change
    figures."""
    import flows.ruling
    from flows.database import Database
    from flows.refresh import refresh
    from transforms.contract import AWAY, REFUSED, TESTED_ELSEWHERE, UNREACHABLE, WRONG_NUMBER

    data = tmp_path / "data"
    write_synthetic(generate(3000, seed=29), data)
    tests = read_table(data / "tests.csv", TESTS).frame.drop("_line")
    morning, full = tmp_path / "tests_morning.csv", tmp_path / "tests_all.csv"
    tests.head(tests.height // 2).write_csv(morning)
    # The afternoon: the other half, and 600 of the morning's people tested again (the same identity, a new
    # record in the round), as re-tests are in a mass-testing city: most change nothing of their rulings.
    retests = tests.head(tests.height // 2).sample(600, seed=3).with_columns(
        ("RT" + pl.col("record_id")).alias("record_id"), pl.lit("2022-05-20 09:15:00").alias("sampled_at"))
    pl.concat([tests, retests]).write_csv(full)
    # and 300 new doses of the morning's people: a resident with a new dose is ruled again, tested or not.
    vaccinations = read_table(data / "vaccinations.csv", VACCINATIONS).frame.drop("_line")
    doses = tmp_path / "vaccinations_all.csv"
    pl.concat([vaccinations, vaccinations.sample(300, seed=4).with_columns(
        ("RV" + pl.col("record_id")).alias("record_id"), pl.lit("2022-05-20 08:00:00").alias("vaccinated_at"))]
              ).write_csv(doses)

    def settings(tests_path, name):
        return load_settings(data / "campaign.toml", tests=str(tests_path), out=str(tmp_path / name / "out"),
                             vaccinations=str(doses if tests_path == full else data / "vaccinations.csv"),
                             db=str(tmp_path / name / "g.duckdb"))

    first = refresh(settings(morning, "kept"))
    assert first.rules["ruled_from_kept"] is False and first.rules["why_all"] == "none kept"
    calls = pl.read_csv(tmp_path / "kept" / "out" / "call_list.csv", infer_schema=False)
    untested = calls.filter(pl.col("reason") == "untested")["resident_id"].unique(maintain_order=True).to_list()
    outcomes = [AWAY, WRONG_NUMBER, REFUSED, UNREACHABLE, UNREACHABLE, TESTED_ELSEWHERE]
    attempts = pl.DataFrame({
        "file_hash": [f"h{i}" for i in range(len(outcomes) * 3)], "source": "test",
        "resident_id": [rid for rid in untested[:3] for _ in outcomes],
        "reason": "untested", "outcome": outcomes * 3, "note": "", "grid_worker": "",
    })
    db = Database(settings(morning, "kept").duckdb)
    try:
        assert db.store_attempts(attempts.with_row_index().filter(pl.col("index") % 4 != 1).drop("index")) > 0
    finally:
        db.close()
    shutil.copytree(tmp_path / "kept", tmp_path / "all")
    shutil.rmtree(tmp_path / "all" / "kept_rules")

    # The residents ruled again in parts of 97 of them (a city's, a million at a time), the whole roster at once.
    with monkeypatch.context() as patch:
        patch.setattr(flows.ruling, "RULES_PART_ROWS", 97)
        kept = refresh(settings(full, "kept"))
    everyone = refresh(settings(full, "all"))
    assert kept.rules["ruled_from_kept"] is True and kept.rules["why_all"] is None
    assert 5 * 97 < kept.rules["residents_ruled"] < kept.rules["residents"] // 2
    # Residents tested in the morning whose only news is another test are not ruled again (flows.ruling).
    assert kept.rules["tested_before_not_ruled"] > 200
    assert everyone.rules["ruled_from_kept"] is False and everyone.rules["why_all"] == "none kept"
    assert everyone.rules["residents_ruled"] == everyone.rules["residents"] == kept.rules["residents"]
    a, b = tmp_path / "kept" / "out", tmp_path / "all" / "out"
    for name in ("call_list", "coverage", "escalation", "roster_corrections", "unregistered"):
        assert (a / f"{name}.csv").read_bytes() == (b / f"{name}.csv").read_bytes(), name
    assert kept.changes == everyone.changes and kept.coverage == everyone.coverage
    assert kept.follow_up == everyone.follow_up and not kept.changes["first_run"]
    assert kept.changes["came_off_tested"] > 0 and kept.follow_up["escalation"] > 0
    assert kept.follow_up["roster_corrections"] > 0  # the wrong number, beside any duplicates

    # Nothing new at all: nobody is ruled, and the lists are the same again (escalation grows with the
    # refreshes that listed a resident, and is found anew each time).
    again = refresh(settings(full, "kept"))
    assert again.rules["ruled_from_kept"] is True and again.rules["residents_ruled"] == 0
    assert again.follow_up["escalation"] > kept.follow_up["escalation"]
    for name in ("call_list", "coverage", "roster_corrections"):
        before = pl.read_csv(b / f"{name}.csv", infer_schema=False)
        now = pl.read_csv(a / f"{name}.csv", infer_schema=False)
        if name == "call_list":
            before, now = before.drop("new_since_last"), now.drop("new_since_last")
        assert now.equals(before), name


def test_decisions_merged_kind_by_kind_are_those_of_one_sort_by_kind_and_record():
    """transforms.sorted_links: the last copy (sorted) with the decisions made now (in any order) merged kind by
    kind is what sorting them all by record_kind and record_id gives, a kind only the new decisions hold too."""
    from transforms.sorted_links import merge_sorted_links

    rng = np.random.default_rng(5)
    ids = [f"T{n:05d}" if n % 3 else f"{n}" for n in rng.choice(100_000, 3_000, replace=False)]  # digits sort first
    kinds = rng.choice(["test", "vaccination"], len(ids))
    whole = pl.DataFrame({"record_kind": kinds, "record_id": ids, "resident_id": [f"R{i}" for i in range(len(ids))],
                          "score": rng.random(len(ids))})
    now = rng.random(len(ids)) < 0.1
    base = whole.filter(~pl.Series(now)).sort("record_kind", "record_id")
    extra = whole.filter(pl.Series(now)).sample(fraction=1.0, shuffle=True, seed=1)
    expected = whole.sort("record_kind", "record_id")
    assert merge_sorted_links(base.lazy(), extra, ["test", "vaccination"]).collect().equals(expected)
    only_new = extra.with_columns(pl.lit("walk_in").alias("record_kind"))  # a kind the copy does not hold
    merged = merge_sorted_links(base.lazy(), only_new, ["test", "vaccination"]).collect()
    assert merged.equals(pl.concat([base, only_new]).sort("record_kind", "record_id"))


def test_decisions_sorted_column_by_column_are_those_of_one_sort():
    """transforms.sorted_links.sorted_column_by_column gives what a frame's sort gives, and takes the columns it
    sorted out of the list (so nothing of the unsorted frame stays held by it)."""
    from transforms.sorted_links import sorted_column_by_column

    rng = np.random.default_rng(7)
    n = 5_000
    frame = pl.DataFrame({"record_kind": rng.choice(["vaccination", "test"], n),
                          "record_id": [f"T{i:05d}" if i % 4 else f"{i}" for i in rng.permutation(n)],
                          "resident_id": [f"R{i}" for i in rng.integers(0, 900, n)], "score": rng.random(n)})
    expected = frame.sort("record_kind", "record_id")
    for given in (frame, frame.sort("record_kind")):  # kinds mixed; made kind after kind (sorted a kind at a time)
        columns = given.get_columns()
        out = sorted_column_by_column(columns)
        assert out.equals(expected) and not out.equals(given)
        assert columns == []
    assert sorted_column_by_column(frame.clear().get_columns()).equals(frame.clear())


def test_each_refreshs_decisions_are_kept_as_a_file_of_their_own_until_the_copy_is_written_whole(
        tmp_path, prefect_server, monkeypatch):
    """flows.kept_links: when records were only added, the decisions made on them are kept as one more sorted
    file beside the copy's (the city's are not written again); matches/ lists each file's decisions in parts
    of at most PART_ROWS rows, in order, and only the new file's parts are written (flows.match_parts): together
    they are what a refresh from scratch lists, and the rules read them as a refresh from scratch does. At
    MAX_RUNS files the later ones are merged into one; when they outgrow MAX_LATER_SHARE of the first's
    decisions, the copy is written as one again."""
    import flows.kept_links
    import flows.match_parts
    from flows.refresh import refresh

    monkeypatch.setattr(flows.kept_links, "MAX_RUNS", 3)
    monkeypatch.setattr(flows.match_parts, "PART_ROWS", 400)
    data = tmp_path / "data"
    write_synthetic(generate(800, seed=41), data)
    tests = read_table(data / "tests.csv", TESTS).frame.drop("_line")
    export = tmp_path / "tests_export.csv"

    def run(rows: int, state: str):
        tests.head(rows).write_csv(export)
        report = refresh(load_settings(data / "campaign.toml", tests=str(export), out=str(tmp_path / state / "out"),
                                       db=str(tmp_path / state / "g.duckdb")))
        meta = json.loads((tmp_path / state / "kept_links" / "meta.json").read_text(encoding="utf-8"))
        files = sorted(p.name for p in (tmp_path / state / "kept_links").glob("links-*.parquet"))
        assert files == sorted(meta["files"]) and len(meta["file_rows"]) == len(files) == len(meta["file_tallies"])
        return report, meta["file_rows"], tmp_path / state / "out"

    def parts(out) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((out / "matches").glob("*.csv"))}

    def check_parts(out, file_rows: list[int]) -> None:
        """Each copy file's decisions, in its parts in order: sorted, none over PART_ROWS, all of them."""
        for i, rows in enumerate(file_rows, 1):
            cut = [pl.read_csv(p, infer_schema=False) for p in sorted((out / "matches").glob(f"{i:02d}-*.csv"))]
            assert [f.height for f in cut] == [min(400, rows - k) for k in range(0, rows, 400)]
            whole = pl.concat(cut)
            assert whole.equals(whole.sort("record_kind", "record_id"))
        assert len(parts(out)) == sum(-(-rows // 400) for rows in file_rows)

    step = tests.height // 50
    rows = tests.height - 4 * step
    first, file_rows, out = run(rows, "kept")
    assert len(file_rows) == 1 and file_rows[0] > 2 * 400  # the city's decisions in three parts or more
    check_parts(out, file_rows)
    assert first.lists["matches_parts_written"] == len(parts(out)) and first.lists["matches_parts_reused"] == 0
    # The third addition finds MAX_RUNS files: the later two and its own are merged into one, the city's file
    # (and its parts) kept; the fourth's later files would hold more than MAX_LATER_SHARE: written whole.
    for expected_files, how in ((2, "add"), (3, "add"), (2, "fold"), (1, "whole")):
        rows += step
        if expected_files == 2 and how == "add":  # a copy kept before its files' tallies were: counted once
            meta_path = tmp_path / "kept" / "kept_links" / "meta.json"
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            del meta["file_tallies"]
            meta_path.write_text(json.dumps(meta), encoding="utf-8")
        if how == "whole":
            monkeypatch.setattr(flows.kept_links, "MAX_LATER_SHARE", 0.0)
        before = parts(out)
        report, file_rows, out = run(rows, "kept")
        assert report.linking["sorted_decisions_from"] == "last_copy" and 0 < report.linking["records_linked_now"]
        assert len(file_rows) == expected_files
        check_parts(out, file_rows)
        now = parts(out)
        city = {name: part for name, part in before.items() if name.startswith("01-")}
        if how == "add":  # the last output's parts as they were, linked; the new file's written
            assert {name: now[name] for name in before} == before
            assert report.lists["matches_parts_reused"] == len(before)
            assert report.lists["matches_parts_written"] == len(now) - len(before) == 1
        elif how == "fold":  # the city's parts linked; the later files' decisions in one part, written
            assert {name: now[name] for name in city} == city and set(now) == {*city, "02-0001.csv"}
            assert report.lists["matches_parts_reused"] == len(city) and report.lists["matches_parts_written"] == 1
        else:
            assert report.lists["matches_parts_written"] == len(now) and report.lists["matches_parts_reused"] == 0
        if how != "add" or expected_files == 3:  # read by merging files (three; or made by merging them)
            whole, _, scratch = run(rows, f"scratch_{rows}")
            assert report.linking["decisions"] == whole.linking["decisions"]  # added up from each file's tally
            assert sorted_matches(out).equals(sorted_matches(scratch))
            assert sorted_csv(out / "call_list.csv", ["new_since_last"]).equals(
                sorted_csv(scratch / "call_list.csv", ["new_since_last"]))
            assert sorted_csv(out / "unregistered.csv").equals(sorted_csv(scratch / "unregistered.csv"))
            assert report.rules["ruled_from_kept"]
    assert not list(out.parent.glob(".out.matches-*"))  # the writer's folder gone once its parts were moved in


def test_a_last_book_or_page_gone_by_hand_is_written_anew(tmp_path, prefect_server):
    """A book, page or part of matches/ unchanged since the last refresh is linked from the last output; one
    that was deleted from it by hand (the link finds nothing) is written anew, and only it."""
    from flows.refresh import refresh

    data = tmp_path / "data"
    write_synthetic(generate(400, seed=43), data)
    settings = load_settings(data / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "g.duckdb"))
    first = refresh(settings)
    book = sorted((tmp_path / "out" / "sheets").rglob("*.xlsx"))[0]
    page = sorted((tmp_path / "out" / "print").rglob("*.html"))[0]
    part = tmp_path / "out" / "matches" / "01-0001.csv"
    shown = (_cells(book), page.read_text(encoding="utf-8"), part.read_bytes())
    book.unlink()
    page.unlink()
    part.unlink()
    again = refresh(settings)
    assert again.lists["workbooks_written"] == 1 and again.lists["print_pages_written"] == 1
    assert again.lists["workbooks_reused"] == first.lists["workbooks_written"] + first.lists["workbooks_reused"] - 1
    assert again.lists["matches_parts_written"] == 1 and again.lists["matches_parts_reused"] == 0
    assert (_cells(book), page.read_text(encoding="utf-8"), part.read_bytes()) == shown


def test_the_unlinked_tests_kept_beside_the_copy_are_those_a_refresh_from_scratch_finds(tmp_path, prefect_server):
    """flows.kept_links keeps the test records with no decision (what the unregistered list is made from)
    beside the copy, and a refresh that carries the copy on changes them only where it linked: records added
    since, and records linked again because a worker rejected their link (which may leave them with none).
    Each is what a refresh from scratch, with the same verdicts, finds."""
    from flows.database import Database
    from flows.refresh import refresh
    from transforms.feedback import REJECTED

    data = tmp_path / "data"
    write_synthetic(generate(800, seed=43), data)
    # The generator writes the people on no roster last: shuffled, the morning has some of them too.
    tests = read_table(data / "tests.csv", TESTS).frame.drop("_line").sample(fraction=1.0, shuffle=True, seed=5)
    # The export grows in place (the same bytes and more), so the refresh after takes what the last one kept.
    morning = full = tmp_path / "tests.csv"
    tests.head(tests.height * 8 // 10).write_csv(morning)

    def settings(path, state):
        return load_settings(data / "campaign.toml", tests=str(path), out=str(tmp_path / state / "out"),
                             db=str(tmp_path / state / "g.duckdb"))

    def lone(state) -> set[str]:
        folder = tmp_path / state / "kept_links"
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        return set(pl.read_parquet(folder / meta["lone"])["record_id"].to_list())

    refresh(settings(morning, "kept"))
    single = matches(tmp_path / "kept" / "out").filter((pl.col("record_kind") == "test") & (pl.len().over("record_id") == 1)).head(6)
    verdicts = single.select("record_kind", "record_id", "resident_id", pl.lit(REJECTED).alias("verdict"),
                             pl.lit("test").alias("source"))
    before = lone("kept")
    tests.write_csv(full)
    for state in ("kept", "scratch"):
        db = Database(settings(full, state).duckdb)
        try:
            db.store_feedback(verdicts)
        finally:
            db.close()
    kept = refresh(settings(full, "kept"))
    scratch = refresh(settings(full, "scratch"))
    assert kept.linking["sorted_decisions_from"] == "last_copy"
    assert scratch.linking["sorted_decisions_from"] == "linked_now"
    assert lone("kept") == lone("scratch")
    rejected = set(single["record_id"].to_list())
    left_alone = rejected - set(matches(tmp_path / "scratch" / "out")["record_id"].to_list())
    assert left_alone and left_alone <= lone("kept") and not left_alone & before  # linked again: now with none
    added = set(tests["record_id"].to_list()[tests.height * 8 // 10:])
    assert added & lone("kept") and before and before <= lone("kept")  # added ones with none; the morning's stay
    a, b = tmp_path / "kept" / "out", tmp_path / "scratch" / "out"
    assert sorted_csv(a / "unregistered.csv").equals(sorted_csv(b / "unregistered.csv"))
    assert pl.read_csv(b / "unregistered.csv", infer_schema=False)["record_id"].is_in(list(added)).any()
    # Where they are placed (flows.kept_unregistered): the morning's carried on, only those that came placed;
    # their facts (flows.lone_facts): only those that came looked for, the added ones' and the rejected ones'.
    places, facts = kept.linking["unregistered_places"], kept.linking["unlinked_test_facts"]
    assert places["carried_on"] and places["kept"] > 0 and places["placed_now"] > 0
    assert facts == {"read_after": len(lone("kept") - before - left_alone), "kept": 0,
                     "read_before": len(left_alone)}
    assert scratch.linking["unregistered_places"]["carried_on"] is False
    assert scratch.linking["unlinked_test_facts"] == {"kept": 0, "read_after": len(lone("scratch")),
                                                      "read_before": 0}
