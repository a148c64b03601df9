"""Strings and lists of strings as compiled loops read them: a polars or Arrow column's buffers as numpy arrays
(UTF-8 bytes, offsets, validity bitmap), never a Python string per row. The comparison asks a few questions of
every candidate pair (one edit apart? in the resident's household?) that polars answers in a pass or more per
question and numba answers in one loop over the bytes."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import polars as pl
import pyarrow as pa

Buffers = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def arrow(s: pl.Series) -> pa.Array:
    """The series as one Arrow array."""
    arr = s.to_arrow()
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def string_buffers(arr: pa.Array) -> Buffers:
    """UTF-8 bytes, offsets (n + 1), and the validity bitmap with the bit the first string is at (an empty
    bitmap: none is null)."""
    arr = arr.cast(pa.large_string())
    valid, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.zeros(0, np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8)
    return data, offsets, _bitmap(valid, arr), arr.offset


def _bitmap(valid: pa.Buffer | None, arr: pa.Array) -> np.ndarray:
    return np.zeros(0, np.uint8) if valid is None or not arr.null_count else np.frombuffer(valid, dtype=np.uint8)


@numba.njit(nogil=True, cache=True)
def is_valid(valid: np.ndarray, first: int, i: int) -> bool:
    return not len(valid) or (valid[(first + i) >> 3] >> ((first + i) & 7)) & 1 == 1


@numba.njit(nogil=True, cache=True)
def span(offsets: np.ndarray, valid: np.ndarray, first: int, i: int) -> tuple[int, int]:
    """Where the i-th string's bytes are; a null's are none, whatever its offsets say."""
    if not is_valid(valid, first, i):
        return 0, 0
    return offsets[i], offsets[i + 1]


@numba.njit(nogil=True, cache=True)
def same_bytes(data_a: np.ndarray, a0: int, a1: int, data_b: np.ndarray, b0: int, b1: int) -> bool:
    if a1 - a0 != b1 - b0:
        return False
    for k in range(a1 - a0):
        if data_a[a0 + k] != data_b[b0 + k]:
            return False
    return True


@dataclass(frozen=True)
class StringLists:
    """A column of lists of strings as the compiled loop reads it, taken out of Arrow once and then read by
    row number: a pair names its resident's household row, and its lists are never copied to the pair."""

    lists_valid: np.ndarray
    lists_first: int
    starts: np.ndarray  # list i's strings are starts[i]:starts[i + 1]
    strings: Buffers

    @classmethod
    def of(cls, lists: pl.Series | pa.Array) -> StringLists:
        arr = arrow(lists) if isinstance(lists, pl.Series) else lists
        arr = arr.cast(pa.large_list(pa.large_string()))
        starts = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
        return cls(_bitmap(arr.buffers()[0], arr), arr.offset, starts, string_buffers(arr.values))

    def __len__(self) -> int:
        return len(self.starts) - 1

    def holds(self, values: pl.Series | pa.Array, rows: pl.Series | None = None) -> np.ndarray:
        """Whether list rows[i] (list i without rows) holds values[i], as polars' list.contains then
        fill_null(False) says: false for a null list or row number, and a null value is held by a list holding
        a null."""
        values = arrow(values.cast(pl.String)) if isinstance(values, pl.Series) else values
        if rows is None:
            if len(values) != len(self):
                raise ValueError(f"{len(self)} lists against {len(values)} values")
            at = np.arange(len(values), dtype=np.int64)
        else:
            if len(values) != len(rows):
                raise ValueError(f"{len(rows)} row numbers against {len(values)} values")
            at = rows.cast(pl.Int64).fill_null(-1).to_numpy()
        out = np.empty(len(values), dtype=np.bool_)
        _holds(at, self.lists_valid, self.lists_first, self.starts, *self.strings, *string_buffers(values), out)
        return out


def list_contains(lists: pl.Series, values: pl.Series) -> pl.Series:
    """polars' list.contains(values).fill_null(False), for a frame that carries its lists."""
    return pl.Series(StringLists.of(lists).holds(values))


@numba.njit(nogil=True, cache=True)
def _holds(at, lists_valid, lists_first, starts, data, offsets, valid, first, v_data, v_offsets, v_valid,
           v_first, out):
    for i in range(len(out)):
        out[i] = False
        row = at[i]
        if row < 0 or not is_valid(lists_valid, lists_first, row):
            continue
        null_value = not is_valid(v_valid, v_first, i)
        v0, v1 = v_offsets[i], v_offsets[i + 1]
        for j in range(starts[row], starts[row + 1]):
            if not is_valid(valid, first, j):
                if null_value:
                    out[i] = True
                    break
            elif not null_value and same_bytes(data, offsets[j], offsets[j + 1], v_data, v0, v1):
                out[i] = True
                break
