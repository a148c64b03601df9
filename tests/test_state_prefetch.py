"""The state's files a refresh reads later, asked of the disk while it loads (flows.state_prefetch)."""

from __future__ import annotations

import os
from pathlib import Path

from flows import state_layout as layout
from flows.history_files import CALL_LISTS
from flows.state_prefetch import StatePrefetch, state_reads, within


def _file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def _state(root: Path) -> tuple[Path, list[Path]]:
    """A state folder as a refresh leaves it, with files the later stages do not read beside those they do;
    the database, and the files expected, in the order expected."""
    sources = root / layout.LOADED_SOURCES
    database = _file(root / "gridsweep.duckdb", 3_000_000)
    expected = [
        _file(sources / "roster" / "facts-00000.parquet", 900_000),
        _file(sources / "roster" / "facts-00001.parquet", 20_000),
        database,
        _file(root / layout.KEPT_LINKS / "links-b.parquet", 700_000),
        _file(root / layout.KEPT_LINKS / "lone-a.parquet", 1_000),
        _file(root / CALL_LISTS / "20261207T220855-f9ae7c--2.parquet", 5_000),  # the newest call list alone
        _file(root / layout.KEPT_RULES / "rules-1" / "call_list.parquet", 600_001),
        _file(sources / "tests" / "facts-00000.parquet", 1_500_000),
        _file(sources / "vaccinations" / "facts-00000.parquet", 800_000),
        _file(root / layout.UNREGISTERED_PLACES / "placed-3c.parquet", 2_000),
        _file(root / layout.LONE_FACTS / "facts-9a.parquet", 4_000),
        _file(root / layout.ROSTER_DERIVED / "a7f0" / "buildings.parquet", 3_000),
    ]
    _file(root / CALL_LISTS / "20261207T200042-00a554--1.parquet", 5_000)  # an older run's call list
    _file(sources / "tests" / "records-00000.parquet", 2_000_000)  # linking rows: only the new ones are read
    _file(sources / "tests" / "keys-00000.parquet", 10_000)  # read by the loading itself
    _file(root / layout.KEPT_LINKS / "meta.json", 100)
    return database, expected


def test_the_files_the_later_stages_read_are_listed_in_the_order_they_read_them(tmp_path):
    database, expected = _state(tmp_path)
    assert state_reads(tmp_path, database) == expected
    # A fresh state (a first refresh): nothing to ask for, and nothing fails.
    assert within(state_reads(tmp_path / "new", tmp_path / "new" / "g.duckdb"), None) == []


def test_the_budget_leaves_out_what_would_go_over_it_but_not_a_smaller_file_after_it(tmp_path):
    a, b, c = _file(tmp_path / "a", 5), _file(tmp_path / "b", 10), _file(tmp_path / "c", 3)
    gone = tmp_path / "gone"
    assert within([a, gone, b, c], 9) == [(a, 5), (c, 3)]
    assert within([a, gone, b, c], None) == [(a, 5), (b, 10), (c, 3)]


def test_every_byte_of_every_listed_file_is_asked_for_a_piece_at_a_time(tmp_path):
    database, expected = _state(tmp_path)
    prefetch = StatePrefetch(tmp_path, database)
    assert [path for path, _ in prefetch.files] == expected  # the machine has the memory for 8 MB
    assert prefetch.figures()["seconds"] is None  # not begun: it begins when the refresh says
    prefetch.start()
    prefetch.wait()
    figures = prefetch.figures()
    # Files of 600,001 bytes and more span several pieces (ASK_BYTES), the last one short: all asked for.
    assert figures["bytes_asked"] == sum(path.stat().st_size for path in expected)
    assert figures["files"] == len(expected) and figures["seconds"] is not None


def test_a_stopped_prefetch_does_not_begin(tmp_path):
    database, _ = _state(tmp_path)
    prefetch = StatePrefetch(tmp_path, database)
    prefetch.stop()
    prefetch.start()
    prefetch.wait()
    assert prefetch.figures()["bytes_asked"] == 0 and prefetch.figures()["seconds"] is None


def test_where_the_system_cannot_be_advised_nothing_is_asked_for_and_nothing_fails(tmp_path, monkeypatch):
    database, _ = _state(tmp_path)
    monkeypatch.delattr(os, "posix_fadvise")
    prefetch = StatePrefetch(tmp_path, database)
    prefetch.start()
    prefetch.wait()
    figures = prefetch.figures()
    assert figures["bytes_asked"] == 0 and figures["seconds"] is not None and figures["idle_io_priority"] is None
