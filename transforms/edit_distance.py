"""Edit distances between the two sides of millions of candidate pairs, as the comparison levels read them.

rapidfuzz computes a distance in well under a microsecond, but each pair it is given must first become two
Python strings, which costs more than the distance. So: equal strings are 0 without asking; the ID and phone
levels only ask whether two strings are at most one edit apart, which for two strings of the same length is a
question about their bytes that numpy answers for a whole slice at once; and the name levels only read a
distance where the names begin alike or hold a placeholder, so it is computed there alone.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from rapidfuzz import process
from rapidfuzz.distance import OSA

# Longer strings (never an ID or a phone) are left to rapidfuzz, so that a stray long text does not make every
# row of the byte grid that wide.
_GRID_WIDTH = 32


def osa_distances(a: pl.Series, b: pl.Series, where: pl.Series | None = None) -> pl.Series:
    """Optimal string alignment distance of each pair (null reads as ""); null where `where` is false: not
    computed, and then read by the levels as "not close"."""
    differ = (a.str.len_bytes().fill_null(0) != b.str.len_bytes().fill_null(0)) | (a != b).fill_null(False)
    asked = differ if where is None else differ & where.fill_null(False)
    rows = asked.arg_true().to_numpy()
    out = np.zeros(len(a), dtype=np.int64)
    out[rows] = _rapidfuzz(a, b, rows)
    series = pl.Series(out)
    return series if where is None else series.scatter((differ & ~asked).arg_true(), None)


def osa_within_one(a: pl.Series, b: pl.Series) -> pl.Series:
    """The optimal string alignment distance of each pair capped at 2 (null reads as ""): 0 equal, 1 one
    substitution, insertion, deletion or swap of neighbours apart, 2 anything further."""
    # Nulls are read as "" by their lengths (0), not by filling the columns: filling rewrote every string of
    # the pairs (a third of the time for IDs) where only a few pairs have a null.
    la, lb = a.str.len_bytes().fill_null(0), b.str.len_bytes().fill_null(0)
    ca, cb = a.str.len_chars().fill_null(0), b.str.len_chars().fill_null(0)
    differ = (la != lb) | (a != b).fill_null(False)
    # Same length, one byte per character (ASCII): an edit is then a substitution or a swap of neighbours.
    grid = differ & (la == lb) & (la <= _GRID_WIDTH) & (ca == la) & (cb == lb)
    # Lengths one character apart may be an insertion or a deletion; other characters are not one byte each.
    rest = differ & ~grid & ((ca.cast(pl.Int64) - cb.cast(pl.Int64)).abs() <= 1)
    out = differ.cast(pl.Int64).to_numpy() * 2
    rows = grid.arg_true().to_numpy()
    if len(rows):
        out[rows] = _bytes_within_one(a.gather(rows), b.gather(rows), int(la.gather(rows).max()))
    rows = rest.arg_true().to_numpy()
    out[rows] = np.minimum(_rapidfuzz(a, b, rows), 2)
    return pl.Series(out)


def _rapidfuzz(a: pl.Series, b: pl.Series, rows: np.ndarray) -> np.ndarray:
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    left, right = a.gather(rows).fill_null("").to_list(), b.gather(rows).fill_null("").to_list()
    return np.asarray(process.cpdist(left, right, scorer=OSA.distance, workers=-1), dtype=np.int64)


def _bytes_within_one(a: pl.Series, b: pl.Series, width: int) -> np.ndarray:
    """1 or 2 for pairs of differing ASCII strings, each pair of one length (at most width)."""
    left, right = _byte_grid(a, width), _byte_grid(b, width)
    differs = left != right
    count = differs.sum(axis=1)
    out = np.where(count == 1, 1, 2)
    two = np.flatnonzero(count == 2)
    if len(two):
        i = differs[two].argmax(axis=1)  # the first differing byte; the other must be the next one
        j = np.minimum(i + 1, width - 1)
        swapped = ((j == i + 1) & differs[two, j] & (left[two, i] == right[two, j])
                   & (left[two, j] == right[two, i]))
        out[two[swapped]] = 1
    return out


def _byte_grid(s: pl.Series, width: int) -> np.ndarray:
    """One row of `width` bytes per string, padded at the end with NUL (both sides of a pair alike)."""
    joined = s.str.pad_end(width, "\x00").str.join("").item()
    return np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(-1, width)
