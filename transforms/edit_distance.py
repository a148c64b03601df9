"""Edit distances between the two sides of millions of candidate pairs, as the comparison levels read them.

rapidfuzz computes a distance in well under a microsecond, but each pair it is given must first become two
Python strings, which costs more than the distance. So: equal strings are 0 without asking; the ID and phone
levels, and the name levels but for names with a placeholder, only ask whether two strings are at most one
edit apart, which for two strings of the same length is a question about their bytes that numpy answers for a
whole slice at once (a Chinese name's characters are three bytes each); and the name levels only read a
distance where the names begin alike or hold a placeholder, so it is computed there alone.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from rapidfuzz import process
from rapidfuzz.distance import OSA

# Longer strings (never an ID, a phone or a name) are left to rapidfuzz: a stray long text would make a grid
# that wide.
_GRID_WIDTH = 32


def osa_distances(a: pl.Series, b: pl.Series, where: pl.Series | None = None) -> pl.Series:
    """Optimal string alignment distance of each pair (null reads as ""); null where `where` is false: not
    computed, and then read by the levels as "not close"."""
    differ = _differ(a, b, a.str.len_bytes().fill_null(0), b.str.len_bytes().fill_null(0))
    asked = differ if where is None else differ & where.fill_null(False)
    rows = asked.arg_true().to_numpy()
    out = np.zeros(len(a), dtype=np.int64)
    out[rows] = _rapidfuzz(a, b, rows)
    series = pl.Series(out)
    return series if where is None else series.scatter((differ & ~asked).arg_true(), None)


def osa_within_one(a: pl.Series, b: pl.Series) -> pl.Series:
    """The optimal string alignment distance of each pair capped at 2 (null reads as ""): 0 equal, 1 one
    substitution, insertion, deletion or swap of neighbours apart, 2 anything further."""
    la, lb = a.str.len_bytes().fill_null(0), b.str.len_bytes().fill_null(0)
    ca, cb = a.str.len_chars().fill_null(0), b.str.len_chars().fill_null(0)
    differ = _differ(a, b, la, lb)
    # Same length in characters, each of one byte (ASCII: IDs, phones) or each of three (a Chinese name): an
    # edit is then a substitution or a swap of neighbouring characters, read from the bytes.
    same = differ & (ca == cb) & (ca <= _GRID_WIDTH)
    out = differ.cast(pl.Int64).to_numpy() * 2
    settled = ~differ  # equal: 0
    for width in (1, 3):
        rows = (same & (la == width * ca) & (lb == width * cb)).arg_true()
        if rows.len():
            within, read = _chars_within_one(a.gather(rows), b.gather(rows), ca.gather(rows), width)
            out[rows.to_numpy()[read]] = within[read]
            settled = settled.scatter(rows.filter(pl.Series(read)), True)
    # The rest (lengths one character apart, other characters) to rapidfuzz, if it can be one edit.
    rows = (~settled & ((ca.cast(pl.Int64) - cb.cast(pl.Int64)).abs() <= 1)).arg_true().to_numpy()
    out[rows] = np.minimum(_rapidfuzz(a, b, rows), 2)
    return pl.Series(out)


def _differ(a: pl.Series, b: pl.Series, bytes_a: pl.Series, bytes_b: pl.Series) -> pl.Series:
    """Whether the two strings differ, a null reading as "" (bytes_*: their byte lengths, null as 0). From
    the lengths, not by filling the columns: filling rewrote every string of the pairs (a third of the time
    for IDs) where only a few pairs have a null."""
    return (bytes_a != bytes_b) | (a != b).fill_null(False)


def _rapidfuzz(a: pl.Series, b: pl.Series, rows: np.ndarray) -> np.ndarray:
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    left, right = a.gather(rows).fill_null("").to_list(), b.gather(rows).fill_null("").to_list()
    return np.asarray(process.cpdist(left, right, scorer=OSA.distance, workers=-1), dtype=np.int64)


def _chars_within_one(a: pl.Series, b: pl.Series, chars: pl.Series, width: int) -> tuple[np.ndarray, np.ndarray]:
    """For pairs of differing strings of `chars` characters each, all of `width` bytes: 1 or 2, and whether
    that was read (false where a four-byte character may stand beside a two-byte one, which also makes three
    bytes a character on average)."""
    out, read = np.full(len(a), 2), np.ones(len(a), dtype=bool)
    for n in chars.unique().to_list():
        at = (chars == n).arg_true()
        left, right = _byte_grid(a.gather(at), n * width), _byte_grid(b.gather(at), n * width)
        rows = at.to_numpy()
        if width > 1:
            read[rows] = ~((left >= 0xF0).any(axis=1) | (right >= 0xF0).any(axis=1))
        out[rows] = _grid_within_one(left.reshape(len(at), n, width), right.reshape(len(at), n, width))
    return out, read


def _grid_within_one(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """1 or 2 for differing rows of characters (rows x characters x bytes): one character differs, or two
    neighbours are swapped."""
    differs = left != right
    differs = differs[:, :, 0] if differs.shape[2] == 1 else differs.any(axis=2)  # one byte a character: as is
    count = np.count_nonzero(differs, axis=1)
    out = np.where(count == 1, 1, 2)
    two = np.flatnonzero(count == 2)
    if len(two):
        i = differs[two].argmax(axis=1)  # the first differing character; the other must be the next one
        j = np.minimum(i + 1, differs.shape[1] - 1)
        swapped = ((j == i + 1) & differs[two, j] & (left[two, i] == right[two, j]).all(axis=1)
                   & (left[two, j] == right[two, i]).all(axis=1))
        out[two[swapped]] = 1
    return out


def _byte_grid(s: pl.Series, size: int) -> np.ndarray:
    """One row of the UTF-8 bytes of each string, all of `size` bytes."""
    return np.frombuffer(s.str.join("").item().encode("utf-8"), dtype=np.uint8).reshape(-1, size)
