"""A sheet of every book at once: one frame holding all books' rows, each book's rows one span of it, and
per book a digest of what its sheet shows.

A two-hour refresh of a 20M city builds all 77,481 books to find the two fifths that changed. Cutting every
sheet into a frame of its own (385,000 frames) and hashing each apart in Python were a third of that; here
the spans are cut only for the books written, and the digests are made for all books by numpy in one pass.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

_ODD = np.uint64(1)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise (uint64 arithmetic wraps): each bit of the input moves about half
    the bits of the output."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@functools.lru_cache(maxsize=8)
def _weights(size: int, lane: int) -> np.ndarray:
    """An odd weight per place in a sheet (one lane of two): a row moved changes the sum as a row changed does."""
    return _mix(np.arange(size, dtype=np.uint64) + np.uint64(lane << 40)) | _ODD


def _weight_at(places: np.ndarray, lane: int) -> np.ndarray:
    size = 1 << max(16, int(places.max(initial=0)).bit_length())  # grown by powers of two, so few are cached
    return _weights(size, lane)[places]


def _text_hash(text: str) -> tuple[np.uint64, np.uint64]:
    whole = hashlib.sha256(text.encode()).digest()
    return np.uint64(int.from_bytes(whole[:8], "little")), np.uint64(int.from_bytes(whole[8:16], "little"))


@dataclass(frozen=True)
class SheetRows:
    """One sheet of every book: rows (序号 first, all text), and per key with rows its span (_start, _n) and
    the two lanes of its rows' digest (_s1, _s2)."""

    rows: pl.DataFrame
    spans: pl.DataFrame  # by..., _start, _n, _s1, _s2


def sheet_rows(rows: pl.DataFrame, by: list[str], shown: list[pl.Expr]) -> SheetRows:
    """The sheet of every key (by) of rows: 序号 from 1 within each key, then the columns shown, as text (null
    as ""). Each key's rows are shown in the order given; a caller that gives them together (in the order of
    transforms.sheets.walk_positions) spares a sort here."""
    spans = _spans(rows, by)
    if not _together(spans):
        rows = rows.sort(by, maintain_order=True)
        spans = _spans(rows, by)
    starts, lengths = spans["_start"].to_numpy(), spans["_n"].to_numpy()
    place = np.arange(rows.height, dtype=np.int64) - np.repeat(starts, lengths)
    sheet = rows.select(pl.Series("序号", place + 1).cast(pl.String), *shown).with_columns(
        pl.all().cast(pl.String).fill_null(""))
    s1 = s2 = np.zeros(spans.height, dtype=np.uint64)
    if sheet.height:
        h, at = sheet.hash_rows(seed=0).to_numpy(), place.astype(np.uint64)
        s1 = np.add.reduceat(h * _weight_at(at, 1), starts)
        s2 = np.add.reduceat(_mix(h ^ np.uint64(0x9E3779B97F4A7C15)) * _weight_at(at, 2), starts)
    spans = spans.with_columns(pl.Series("_s1", s1, dtype=pl.UInt64), pl.Series("_s2", s2, dtype=pl.UInt64))
    return SheetRows(sheet, spans)


def _spans(rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return (rows.select(pl.col(by).cast(pl.String)).with_row_index("_start").group_by(by, maintain_order=True)
            .agg(pl.col("_start").first().cast(pl.Int64), pl.len().cast(pl.Int64).alias("_n")))


def _together(spans: pl.DataFrame) -> bool:
    """Each key's rows one span: the keys come in the order of their first rows, so each begins where the last ends."""
    starts, lengths = spans["_start"].to_numpy(), spans["_n"].to_numpy()
    return bool(np.array_equal(starts[1:], (starts + lengths)[:-1]))


class SlicedSheets(Mapping):
    """A book's sheets by name, each cut (without copying) from its layout's rows when it is asked for: the
    writer asks for the books it writes; the others' are never cut."""

    __slots__ = ("_at",)

    def __init__(self, at: dict[str, tuple[pl.DataFrame, int, int]]) -> None:
        self._at = at

    def __getitem__(self, name: str) -> pl.DataFrame:
        frame, start, n = self._at[name]
        return frame.slice(start, n)

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._at)

    def height(self, name: str) -> int:
        return self._at[name][2]


def taken_together(books: list[SlicedSheets]) -> list[SlicedSheets]:
    """The same sheets, each layout's rows of all the books taken in one copy and cut from it. For a writer's
    batch: two threads writing books from slices of the city-wide frames took about a tenth longer than from
    copies (most likely, not proven, because the slices share those frames' buffers, hundreds a column, and
    their reference counts with every other thread's); one copy a batch is the writer's own."""
    if not books:
        return books
    copies = {}
    for name in books[0]:
        frame = books[0]._at[name][0]
        spans = [book._at[name][1:] for book in books]
        at = np.concatenate([np.arange(start, start + n, dtype=np.int64) for start, n in spans])
        starts = np.cumsum([0] + [n for _, n in spans])[:-1].tolist()
        copies[name] = (frame[at] if at.size else frame.clear(), starts, [n for _, n in spans])
    return [SlicedSheets({name: (rows, starts[i], lengths[i]) for name, (rows, starts, lengths) in copies.items()})
            for i in range(len(books))]


def books_sheets(owners: pl.DataFrame, layouts: dict[str, SheetRows]) -> Iterator[tuple[SlicedSheets, tuple[str, ...]]]:
    """Per owner (a row of owners: the keys the layouts are split by, in the order of the books), its sheets and
    each sheet's digest: what the sheet shows (its place in the book, name, columns, rows) and whose it is (the
    owner, which its page header shows), as text. Two sheets that differ share a digest about once in 2^120
    (two independent 64-bit lanes, each a weighted sum of the rows' 64-bit hashes)."""
    by = owners.columns
    owner_1 = owners.hash_rows(seed=0).to_numpy()
    owner_2 = _mix(owner_1 ^ np.uint64(0xD1B54A32D192ED03))
    spans, digests = {}, {}
    for at, (name, layout) in enumerate(layouts.items(), start=1):
        mine = owners.join(layout.spans, on=by, how="left", maintain_order="left", nulls_equal=True).select(
            pl.col("_start", "_n", "_s1", "_s2").fill_null(0))
        n = mine["_n"].to_numpy().astype(np.uint64)
        c1, c2 = _text_hash(repr((at, name, layout.rows.columns)))
        lane_1 = _mix(mine["_s1"].to_numpy() + _mix(owner_1 ^ c1) + n * np.uint64(0x9E3779B97F4A7C15))
        lane_2 = _mix(mine["_s2"].to_numpy() + _mix(owner_2 ^ c2) + n * np.uint64(0xC2B2AE3D27D4EB4F))
        digests[name] = (pl.Series(lane_1).cast(pl.String) + "." + pl.Series(lane_2).cast(pl.String)).to_list()
        spans[name] = (layout.rows, mine["_start"].to_list(), mine["_n"].to_list())
    for i in range(owners.height):
        yield (SlicedSheets({name: (rows, starts[i], lengths[i]) for name, (rows, starts, lengths) in spans.items()}),
               tuple(digest[i] for digest in digests.values()))
