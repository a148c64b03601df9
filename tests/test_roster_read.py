"""Linking's read of the roster, begun while the records load (flows.roster_read)."""

from __future__ import annotations

import gc
import weakref

import polars as pl
import pytest

from flows.refresh import roster_identity
from flows.roster_read import RosterRead
from transforms.normalise import IDENTITY_COLUMNS


def _roster(tmp_path, n: int = 1000):
    frame = pl.DataFrame({"resident_id": [f"R{i:05d}" for i in range(n)], "street": ["s"] * n} |
                         {c: [f"{c}{i % 97}" for i in range(n)] for c in IDENTITY_COLUMNS})
    frame.write_parquet(tmp_path / "roster.parquet")
    return frame, pl.scan_parquet(tmp_path / "roster.parquet")


def test_the_read_gives_the_identity_columns_once_and_keeps_nothing(tmp_path):
    frame, scan = _roster(tmp_path)
    read = RosterRead(roster_identity(scan))
    got = read.take()
    assert got.columns == ["resident_id", *IDENTITY_COLUMNS]
    assert got.equals(frame.select("resident_id", *IDENTITY_COLUMNS))
    assert read.seconds is not None and read.seconds >= 0
    # Handed over: the reader holds no reference, so the link's `del` lets the frame go.
    ref = weakref.ref(got)
    del got
    gc.collect()
    assert ref() is None
    with pytest.raises(RuntimeError, match="taken already"):
        read.take()


def test_a_failed_read_is_raised_where_it_is_taken(tmp_path):
    _, scan = _roster(tmp_path)
    (tmp_path / "roster.parquet").write_bytes(b"not parquet")  # the scan's file gone bad before it is read
    read = RosterRead(roster_identity(scan))
    with pytest.raises(pl.exceptions.ComputeError):  # what collecting the scan in the link raised
        read.take()
