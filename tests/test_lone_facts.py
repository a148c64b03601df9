"""The unlinked tests' facts kept between refreshes are the facts a refresh reading every test would find."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import flows.lone_facts
from flows.lone_facts import KeptLoneFacts
from transforms.roster_gaps import UNREGISTERED_FACTS


def _part(folder: Path, name: str, first: int, rows: int, tag: str = "") -> Path:
    """rows test records numbered from first, with their facts (a name carries tag, to tell versions apart)."""
    n = pl.int_range(first, first + rows, eager=True)
    frame = pl.DataFrame({
        "record_id": n.cast(pl.String).str.zfill(6).alias("record_id"),
        "name": ("人" + n.cast(pl.String) + tag).alias("name"),
        "phone": ("139" + n.cast(pl.String).str.zfill(8)).alias("phone"),
        "id_clean": pl.Series([None if i % 3 else f"44030319800101{i % 10000:04d}" for i in n]),
        "address": ("前海路" + n.cast(pl.String) + "号").alias("address"),
        "site": pl.Series(["科技园社区采样点"] * rows),
        "sampled_at": pl.Series([datetime(2022, 5, 20) + timedelta(minutes=int(i)) for i in n]),
        "addr_block": pl.Series([f"B{i % 50}" for i in n]),
        "other": pl.Series(["not read"] * rows),
    })
    path = folder / name
    frame.write_parquet(path)
    return path


def _run_parts(source: list[Path], run: Path) -> list[Path]:
    """A run's parts as the loader gives them: the kept parts hard-linked into the run's own folder."""
    run.mkdir()
    out = []
    for part in source:
        os.link(part, run / part.name)
        out.append(run / part.name)
    return out


def _expected(parts: list[Path], lone: pl.DataFrame) -> pl.DataFrame:
    return pl.scan_parquet(parts).select(UNREGISTERED_FACTS).join(lone.lazy(), on="record_id", how="semi").collect()


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    return a.sort("record_id").equals(b.sort("record_id"))


def _ids(*numbers: int) -> pl.DataFrame:
    return pl.DataFrame({"record_id": [f"{i:06d}" for i in numbers]})


def test_facts_kept_then_only_what_is_missing_is_read(tmp_path: Path) -> None:
    loaded = tmp_path / "loaded"
    loaded.mkdir()
    source = [_part(loaded, "facts-00000.parquet", 0, 1000), _part(loaded, "facts-00001.parquet", 1000, 1000)]
    kept = tmp_path / "state"

    first = _run_parts(source, tmp_path / "run1")
    lone = _ids(*range(0, 2000, 7))
    store = KeptLoneFacts(kept, first)
    got = store.facts(lone)
    assert _same(got, _expected(first, lone)) and got.height == lone.height
    assert store.figures == {"kept": 0, "read_after": lone.height, "read_before": 0}

    # Two hours later: a part added; 14 is linked now, 3 (in the first part) no longer is, 2003 and 2010 are new.
    source.append(_part(loaded, "facts-00002.parquet", 2000, 500))
    second = _run_parts(source, tmp_path / "run2")
    lone = _ids(*[i for i in range(0, 2000, 7) if i != 14], 3, 2003, 2010)
    store = KeptLoneFacts(kept, second)
    got = store.facts(lone)
    assert _same(got, _expected(second, lone))
    assert store.figures == {"kept": lone.height - 3, "read_after": 2, "read_before": 1}
    assert len(list(kept.glob("facts-*.parquet"))) == 2  # the first run's, and the three read now

    # Nothing new: everything comes from what is kept, and nothing more is written.
    third = _run_parts(source, tmp_path / "run3")
    store = KeptLoneFacts(kept, third)
    assert _same(store.facts(lone), _expected(third, lone))
    assert store.figures == {"kept": lone.height, "read_after": 0, "read_before": 0}
    assert len(list(kept.glob("facts-*.parquet"))) == 2


def test_a_source_read_anew_is_not_taken_from_what_was_kept(tmp_path: Path) -> None:
    loaded = tmp_path / "loaded"
    loaded.mkdir()
    kept = tmp_path / "state"
    lone = _ids(5, 50, 500)
    first = _run_parts([_part(loaded, "facts-00000.parquet", 0, 1000)], tmp_path / "run1")
    KeptLoneFacts(kept, first).facts(lone)
    # The export corrected and loaded again: new files, the same record numbers, other facts.
    again = tmp_path / "again"
    again.mkdir()
    second = _run_parts([_part(again, "facts-00000.parquet", 0, 1000, tag="改")], tmp_path / "run2")
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
        source.append(_part(loaded, f"facts-{run:05d}.parquet", run * 100, 100))
        parts = _run_parts(source, tmp_path / f"run{run}")
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

    from transforms.roster_gaps import RosterPlaces, unregistered

    got = KeptLoneFacts(tmp_path / "state", []).facts(pl.DataFrame(schema={"record_id": pl.String}))
    assert got.height == 0 and got.schema["sampled_at"] == pl.Datetime("us")
    places = RosterPlaces(pl.DataFrame(schema=dict.fromkeys(["addr_block", "street", "community", "grid_id",
                                                             "grid_worker"], pl.String)),
                          pl.DataFrame(schema={"street": pl.String, "community": pl.String}))
    assert unregistered(got, places, datetime(2022, 5, 19), datetime(2022, 5, 20)).height == 0
