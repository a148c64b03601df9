"""The compiled membership test against polars' own list.contains, on lists and values with nulls."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.arrow_strings import StringLists, list_contains

# Phones and IDs of one household differ in a digit or two; a Chinese character and the empty string too.
values = st.one_of(st.none(), st.sampled_from(["13800001234", "13800001243", "1380000123", "", "王", "110101X"]))


def _polars(lists: list, items: list) -> list[bool]:
    frame = pl.DataFrame({"l": lists, "v": items}, schema={"l": pl.List(pl.String), "v": pl.String})
    return frame.select(pl.col("l").list.contains(pl.col("v")).fill_null(False))["l"].to_list()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.lists(values, max_size=5)), values), max_size=40))
def test_list_contains_is_polars(rows):
    lists, items = [r[0] for r in rows], [r[1] for r in rows]
    got = list_contains(pl.Series(lists, dtype=pl.List(pl.String)), pl.Series(items, dtype=pl.String))
    assert got.to_list() == _polars(lists, items)


def test_list_contains_reads_slices():
    """Arrow arrays sliced in place: the lists' offsets and bitmap, and the values', start past their first row."""
    lists = [["13800001234"], None, ["13800001234", None], [], ["王", "李"], None, ["1"], ["", "2"]]
    items = ["13800001234", "13800001234", None, None, "李", None, "2", ""]
    want = _polars(lists, items)
    assert want == [True, False, True, False, True, False, False, True]
    for list_type, item_type in ((pa.list_(pa.string()), pa.large_string()),
                                 (pa.large_list(pa.large_string()), pa.string())):
        arrow_lists, arrow_items = pa.array(lists, list_type), pa.array(items, item_type)
        for start in range(len(lists)):
            got = StringLists.of(arrow_lists.slice(start)).holds(arrow_items.slice(start)).tolist()
            assert got == want[start:], (list_type, start)


def test_lists_are_read_by_row_number():
    """A pair names its list by row (a resident's household), any number of times, or none (null)."""
    lists = StringLists.of(pl.Series([["138", "139"], None, ["150"], []], dtype=pl.List(pl.String)))
    rows = pl.Series([0, 0, 2, 1, None, 3, 2, 0], dtype=pl.UInt32)
    values = pl.Series(["139", "150", "150", "150", "150", "150", None, "138"])
    assert lists.holds(values, rows).tolist() == [True, False, True, False, False, False, False, True]
