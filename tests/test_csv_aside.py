"""flows.csv_aside: the decisions' CSV files written by a process of its own from the moment the link is done."""

from __future__ import annotations

import time

import polars as pl
import pytest

from flows.csv_aside import start_aside, write_csv


def _tests_of(scan: pl.LazyFrame) -> pl.LazyFrame:
    return scan.filter(pl.col("record_kind") == "test").sort("record_id")


def _scan(tmp_path, rows: int = 50_000) -> pl.LazyFrame:
    frame = pl.DataFrame({
        "record_kind": ["test", "vaccination"] * (rows // 2),
        "record_id": [f"T{i:07d}" for i in range(rows)],
        "resident_id": [None if i % 7 == 0 else f"R{i % 997:05d}" for i in range(rows)],
        "score": [i / 3 for i in range(rows)],
        "explanation": ["证件号一致，姓名相近" if i % 2 else 'a "quoted", text' for i in range(rows)],
    }, schema_overrides={"explanation": pl.Categorical})
    frame.write_parquet(tmp_path / "links.parquet")
    return _tests_of(pl.scan_parquet(tmp_path / "links.parquet"))


def test_scans_written_aside_are_the_files_the_run_would_write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a scan of a path relative to the run's folder, as a state folder may be
    _scan(tmp_path)
    scan = _tests_of(pl.scan_parquet("links.parquet"))
    out = tmp_path / "out"
    # What refreshes killed before they published left: a folder of parts, and one matches.csv of before.
    (tmp_path / ".out.matches-killed-run").mkdir()
    (tmp_path / ".out.matches-killed-run" / "01-0001.csv").write_text("half a file")
    (tmp_path / ".out.matches-older-run.csv").write_text("half a file")
    aside = start_aside([(scan.slice(0, 10_000), "a.csv"), (scan.slice(10_000, 100_000), "b.csv")], out, "run1")
    assert aside is not None and [p.name for p in tmp_path.glob(".out.matches-*")] == [".out.matches-run1"]
    folder = aside.wait()
    assert folder == tmp_path / ".out.matches-run1" and sorted(p.name for p in folder.iterdir()) == ["a.csv", "b.csv"]
    write_csv(scan.slice(10_000, 100_000), tmp_path / "here.csv")
    assert (folder / "b.csv").read_bytes() == (tmp_path / "here.csv").read_bytes()
    assert (folder / "a.csv").read_bytes().startswith(b"\xef\xbb\xbfrecord_kind,")  # the BOM Excel and WPS need
    assert pl.read_csv(folder / "a.csv").height == 10_000 and pl.read_csv(folder / "b.csv").height == 15_000
    assert aside.seconds is not None and aside.seconds >= 0
    aside.stop()
    assert not folder.exists()  # stop() after the files were not taken: nothing left beside the output


def test_a_writer_that_fails_says_so_and_one_stopped_leaves_nothing(tmp_path):
    scan = _scan(tmp_path)
    (tmp_path / "links.parquet").unlink()  # the scan's file gone: the writer cannot read it
    aside = start_aside([(scan, "a.csv")], tmp_path / "out", "r1")
    with pytest.raises(RuntimeError, match=r"writing \.out\.matches-r1 failed \(exit 1\)"):
        aside.wait()
    assert not aside.folder.exists()
    aside.stop()

    big = _scan(tmp_path, 400_000)
    aside = start_aside([(big, "a.csv")], tmp_path / "out", "r2")
    time.sleep(0.05)
    aside.stop()  # a run that failed before publishing
    assert not aside.folder.exists() and aside._proc.returncode is not None
