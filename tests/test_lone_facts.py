"""The unlinked tests' facts kept between refreshes are the facts a refresh reading every test would find."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from helpers import fact_part, run_parts

import flows.lone_facts
from flows.lone_facts import KeptLoneFacts
from transforms.unregistered import UNREGISTERED_FACTS


def _expected(parts: list[Path], lone: pl.DataFrame) -> pl.DataFrame:
    return pl.scan_parquet(parts).select(UNREGISTERED_FACTS).join(lone.lazy(), on="record_id", how="semi").collect()


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    return a.sort("record_id").equals(b.sort("record_id"))


def _ids(*numbers: int) -> pl.DataFrame:
    return pl.DataFrame({"record_id": [f"{i:06d}" for i in numbers]})


def test_facts_kept_then_only_what_is_missing_is_read(tmp_path: Path) -> None:
    loaded = tmp_path / "loaded"
    loaded.mkdir()
    source = [fact_part(loaded, "facts-00000.parquet", 0, 1000), fact_part(loaded, "facts-00001.parquet", 1000, 1000)]
    kept = tmp_path / "state"

    first = run_parts(source, tmp_path / "run1")
    lone = _ids(*range(0, 2000, 7))
    store = KeptLoneFacts(kept, first)
    got = store.facts(lone)
    assert _same(got, _expected(first, lone)) and got.height == lone.height
    assert store.figures == {"kept": 0, "read_after": lone.height, "read_before": 0}

    # Two hours later: a part added; 14 is linked now, 3 (in the first part) no longer is, 2003 and 2010 are new.
    source.append(fact_part(loaded, "facts-00002.parquet", 2000, 500))
    second = run_parts(source, tmp_path / "run2")
    lone = _ids(*[i for i in range(0, 2000, 7) if i != 14], 3, 2003, 2010)
    store = KeptLoneFacts(kept, second)
    got = store.facts(lone)
    assert _same(got, _expected(second, lone))
    assert store.figures == {"kept": lone.height - 3, "read_after": 2, "read_before": 1}
    assert len(list(kept.glob("facts-*.parquet"))) == 2  # the first run's, and the three read now

    # Nothing new: everything comes from what is kept, and nothing more is written.
    third = run_parts(source, tmp_path / "run3")
    store = KeptLoneFacts(kept, third)
    assert _same(store.facts(lone), _expected(third, lone))
    assert store.figures == {"kept": lone.height, "read_after": 0, "read_before": 0}
    assert len(list(kept.glob("facts-*.parquet"))) == 2


def test_a_source_read_anew_is_not_taken_from_what_was_kept(tmp_path: Path) -> None:
    loaded = tmp_path / "loaded"
    loaded.mkdir()
    kept = tmp_path / "state"
    lone = _ids(5, 50, 500)
    first = run_parts([fact_part(loaded, "facts-00000.parquet", 0, 1000)], tmp_path / "run1")
    KeptLoneFacts(kept, first).facts(lone)
    # The export corrected and loaded again: new files, the same record numbers, other facts.
    again = tmp_path / "again"
    again.mkdir()
    second = run_parts([fact_part(again, "facts-00000.parquet", 0, 1000, tag="改")], tmp_path / "run2")
    store = KeptLoneFacts(kept, second)
    got = store.facts(lone)
    assert _same(got, _expected(second, lone))
    assert got["name"].str.ends_with("改").all()
    assert store.figures == {"kept": 0, "read_after": 3, "read_before": 0}


def test_the_kept_files_are_written_as_one_when_too_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows.lone_facts, "MAX_FILES", 2)
    loaded = tmp_path / "loaded"
    loaded.mkdir()
    kept = tmp_path / "state"
    source: list[Path] = []
    for run in range(4):
        source.append(fact_part(loaded, f"facts-{run:05d}.parquet", run * 100, 100))
        parts = run_parts(source, tmp_path / f"run{run}")
        lone = _ids(*range(1, (run + 1) * 100, 10))  # one more part's worth each time; 1 linked from run 2 on
        if run >= 2:
            lone = lone.filter(pl.col("record_id") != "000001")
        store = KeptLoneFacts(kept, parts)
        assert _same(store.facts(lone), _expected(parts, lone)), run
        files = list(kept.glob("facts-*.parquet"))
        # run 0: one file; 1: a second; 2: two are too many, all as one (without 000001); 3: a second again
        assert len(files) == [1, 2, 1, 2][run], run
        if run == 2:
            assert pl.read_parquet(files[0]).height == lone.height


def test_no_test_parts_give_no_facts_of_the_right_types(tmp_path: Path) -> None:
    """A run whose tests left no part (every row quarantined) still gets a frame the list can filter by time."""
    from datetime import datetime

    from transforms.roster_gaps import RosterPlaces
    from transforms.unregistered import unregistered

    got = KeptLoneFacts(tmp_path / "state", []).facts(pl.DataFrame(schema={"record_id": pl.String}))
    assert got.height == 0 and got.schema["sampled_at"] == pl.Datetime("us")
    places = RosterPlaces(pl.DataFrame(schema=dict.fromkeys(["addr_block", "street", "community", "grid_id",
                                                             "grid_worker"], pl.String)),
                          pl.DataFrame(schema={"street": pl.String, "community": pl.String}))
    assert unregistered(got, places, datetime(2022, 5, 19), datetime(2022, 5, 20)).height == 0


def test_only_the_newcomers_facts_are_found_when_the_change_is_known(tmp_path: Path) -> None:
    loaded = tmp_path / "loaded"
    loaded.mkdir()
    kept = tmp_path / "state"
    source = [fact_part(loaded, "facts-00000.parquet", 0, 1000)]
    first = run_parts(source, tmp_path / "run1")
    lone = _ids(*range(0, 1000, 5))
    KeptLoneFacts(kept, first).facts(lone)

    # A part added: 1002 and 1004 came with no decision, and so did 7 (linked before, in the first part); 10
    # was linked again and is still without one (its facts are kept); 15 has a decision now.
    source.append(fact_part(loaded, "facts-00001.parquet", 1000, 100, tag="新"))
    second = run_parts(source, tmp_path / "run2")
    came = _ids(1002, 1004, 7, 10)
    lone = pl.concat([_ids(*[i for i in range(0, 1000, 5) if i not in (10, 15)]), came])
    store = KeptLoneFacts(kept, second)
    got = store.facts(lone, came)
    assert _same(got, _expected(second, came))
    assert store.figures == {"read_after": 2, "kept": 1, "read_before": 1}
    assert len(list(kept.glob("facts-*.parquet"))) == 2  # the first run's, and the three read now

    # The next whole look finds every record's facts in what is kept, 7's among them.
    third = run_parts(source, tmp_path / "run3")
    store = KeptLoneFacts(kept, third)
    assert _same(store.facts(lone), _expected(third, lone))
    assert store.figures == {"kept": lone.height, "read_after": 0, "read_before": 0}


def test_the_newcomers_are_found_among_all_when_the_kept_files_are_due_to_be_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows.lone_facts, "MAX_FILES", 1)
    loaded = tmp_path / "loaded"
    loaded.mkdir()
    kept = tmp_path / "state"
    source = [fact_part(loaded, "facts-00000.parquet", 0, 100)]
    KeptLoneFacts(kept, run_parts(source, tmp_path / "run1")).facts(_ids(1, 2, 3))
    source.append(fact_part(loaded, "facts-00001.parquet", 100, 100))
    parts = run_parts(source, tmp_path / "run2")
    lone, came = _ids(1, 3, 150), _ids(150)
    store = KeptLoneFacts(kept, parts)
    assert _same(store.facts(lone, came), _expected(parts, came))
    files = list(kept.glob("facts-*.parquet"))
    assert len(files) == 1 and _same(pl.read_parquet(files[0]), _expected(parts, lone))  # 2 gone, 150 in
