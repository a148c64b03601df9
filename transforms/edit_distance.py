"""Edit distances between the two sides of millions of candidate pairs, as the comparison levels read them.

rapidfuzz computes a distance in well under a microsecond, but each pair it is given must first become two
Python strings, which costs more than the distance. The ID, phone and name levels mostly ask only whether two
strings are at most one edit apart, and that is answered for a whole slice by one compiled loop (numba) over
the strings' Arrow buffers, never making a Python string: the bytes two strings share are skipped, and
characters are read only where the two part. A full distance is read only for names holding a placeholder,
and is asked of rapidfuzz for those alone.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl
import pyarrow as pa
from rapidfuzz import process
from rapidfuzz.distance import OSA


def osa_distances(a: pl.Series, b: pl.Series, where: pl.Series | None = None) -> pl.Series:
    """Optimal string alignment distance of each pair (null reads as ""); null where `where` is false: not
    computed, and then read by the levels as "not close"."""
    # A null reads as "": told from the byte lengths, not by filling the columns, which rewrote every string
    # of the pairs where only a few have a null.
    differ = (a.str.len_bytes().fill_null(0) != b.str.len_bytes().fill_null(0)) | (a != b).fill_null(False)
    asked = differ if where is None else differ & where.fill_null(False)
    rows = asked.arg_true().to_numpy()
    out = np.zeros(len(a), dtype=np.int64)
    if len(rows):
        left, right = a.gather(rows).fill_null("").to_list(), b.gather(rows).fill_null("").to_list()
        out[rows] = process.cpdist(left, right, scorer=OSA.distance, workers=-1)
    series = pl.Series(out)
    return series if where is None else series.scatter((differ & ~asked).arg_true(), None)


def osa_within_one(a: pl.Series, b: pl.Series) -> pl.Series:
    """The optimal string alignment distance of each pair capped at 2 (null reads as ""): 0 equal, 1 one
    substitution, insertion, deletion or swap of neighbouring characters apart, 2 anything further."""
    return pl.Series(arrow_within_one(_arrow(a), _arrow(b)))


def arrow_within_one(a: pa.Array, b: pa.Array) -> np.ndarray:
    """osa_within_one of two Arrow string arrays, read from their buffers as they are (not copied)."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} strings against {len(b)}")
    out = np.empty(len(a), dtype=np.int64)
    _within_one(*_buffers(a), *_buffers(b), out)
    return out


def _arrow(s: pl.Series) -> pa.Array:
    arr = s.cast(pl.String).to_arrow()
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """UTF-8 bytes, offsets (n + 1), and the validity bitmap with the bit the first string is at (an empty
    bitmap: none is null)."""
    arr = arr.cast(pa.large_string())
    valid, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.zeros(0, np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8)
    valid = np.zeros(0, np.uint8) if valid is None or not arr.null_count else np.frombuffer(valid, dtype=np.uint8)
    return data, offsets, valid, arr.offset


@numba.njit(nogil=True, cache=True)
def _span(offsets: np.ndarray, valid: np.ndarray, first: int, i: int) -> tuple[int, int]:
    """Where the i-th string's bytes are; a null's are none, whatever its offsets say."""
    if len(valid) and not (valid[(first + i) >> 3] >> ((first + i) & 7)) & 1:
        return 0, 0
    return offsets[i], offsets[i + 1]


@numba.njit(nogil=True, cache=True)
def _char(data: np.ndarray, at: int) -> tuple[int, int]:
    """The code point at byte `at` of valid UTF-8, and how many bytes it takes."""
    byte = np.int64(data[at])
    if byte < 0x80:
        return byte, 1
    size = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
    point = byte & (0x1F if size == 2 else 0x0F if size == 3 else 0x07)
    for k in range(1, size):
        point = (point << 6) | (np.int64(data[at + k]) & 0x3F)
    return point, size


@numba.njit(nogil=True, cache=True)
def _same(data_a: np.ndarray, a0: int, a1: int, data_b: np.ndarray, b0: int, b1: int) -> bool:
    if a1 - a0 != b1 - b0:
        return False
    for k in range(a1 - a0):
        if data_a[a0 + k] != data_b[b0 + k]:
            return False
    return True


@numba.njit(nogil=True, cache=True)
def _within_one(data_a, offsets_a, valid_a, first_a, data_b, offsets_b, valid_b, first_b, out):
    """out[i]: 0, 1 or 2 for the i-th pair, as osa_within_one says. From the first character the two differ
    in, one edit apart means what follows it is the same in both (a substitution), what follows it in one is
    the other from there (one character more), or the two characters there are swapped and what follows them
    is the same; UTF-8 from a character on is equal as bytes where it is equal as characters, so what follows
    is compared as bytes, and most pairs are told apart in a byte or two."""
    for i in range(len(out)):
        a, a1 = _span(offsets_a, valid_a, first_a, i)
        b, b1 = _span(offsets_b, valid_b, first_b, i)
        # The bytes in common, then back to the start of the character they part in (equal bytes before it).
        n, k = min(a1 - a, b1 - b), 0
        while k < n and data_a[a + k] == data_b[b + k]:
            k += 1
        if k < n:
            while k > 0 and data_a[a + k] & 0xC0 == 0x80:
                k -= 1
        a, b = a + k, b + k
        ca, sa, cb, sb = 0, 0, 0, 0
        if a < a1 and b < b1:
            ca, sa = _char(data_a, a)
            cb, sb = _char(data_b, b)
        if a == a1 and b == b1:
            out[i] = 0
        elif a == a1:  # the rest of b is one character more?
            out[i] = 1 if b + _char(data_b, b)[1] == b1 else 2
        elif b == b1:
            out[i] = 1 if a + _char(data_a, a)[1] == a1 else 2
        elif (_same(data_a, a + sa, a1, data_b, b + sb, b1) or _same(data_a, a + sa, a1, data_b, b, b1)
              or _same(data_a, a, a1, data_b, b + sb, b1)):
            out[i] = 1
        elif a + sa < a1 and b + sb < b1:
            ca2, sa2 = _char(data_a, a + sa)
            cb2, sb2 = _char(data_b, b + sb)
            swapped = ca == cb2 and ca2 == cb
            out[i] = 1 if swapped and _same(data_a, a + sa + sa2, a1, data_b, b + sb + sb2, b1) else 2
        else:
            out[i] = 2
