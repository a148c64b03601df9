"""Frames that hold only their own text, for the few rows kept from a big frame after it is gone.

Polars keeps strings as views into shared buffers, and a filter, a gather or a sort of a frame copies the views
only: the rows picked keep the whole of every buffer they point into alive (pola-rs/polars#19497; Arrow's
string views work the same way, and are compacted by hand, arrow-rs `gc`). A source read a slice at a time
keeps a few rows of each slice for the whole source (the suite's sample, the quarantined rows, the names met),
so it kept every slice's text: loading a 20M city's test export (48.7 M rows) grew 0.2 GB a million rows, to
12.8 GB, and fell back to 1.9 GB once the source was done (bench/HISTORY.md, fifty-first session).
"""

from __future__ import annotations

import io

import polars as pl


def owned(frame: pl.DataFrame) -> pl.DataFrame:
    """frame with its text copied into buffers of its own, sized to its rows; the same values and types."""
    if frame.height == 0:
        return frame
    return pl.DataFrame([_owned(column) if _holds_text(column.dtype) else column for column in frame.get_columns()])


def _owned(column: pl.Series) -> pl.Series:
    """A string column through Arrow's plain (non-view) strings, which copy only the bytes the views point at
    (17 ms for a 100,000-row sample of a test export, against 75-95 through IPC); a nested one through IPC."""
    if column.dtype in (pl.String, pl.Binary):
        return pl.Series(column.name, column.to_arrow(compat_level=pl.CompatLevel.oldest()), dtype=column.dtype)
    buffer = io.BytesIO()
    column.to_frame().write_ipc(buffer, compression="uncompressed")
    buffer.seek(0)
    return pl.read_ipc(buffer).to_series()


def _holds_text(dtype: pl.DataType) -> bool:
    if dtype in (pl.String, pl.Binary):
        return True
    inner = getattr(dtype, "inner", None)
    if inner is not None:
        return _holds_text(inner)
    fields = getattr(dtype, "fields", None)
    return any(_holds_text(f.dtype) for f in fields) if fields else False
