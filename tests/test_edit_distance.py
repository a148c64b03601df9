"""The comparison's edit distances against rapidfuzz's, on strings one typo apart and strings that are not."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import OSA

from transforms.edit_distance import arrow_within_one, osa_distances, osa_within_one

# Digits and X as in IDs, * as in masked ones, a space, and characters of two, three and four bytes (names,
# typos; a two- and a four-byte character make three bytes a character on average, as Chinese names do).
_ALPHABET = "0123456789X* 王明李?é𠀀"
texts = st.text(alphabet=_ALPHABET, max_size=40)


@st.composite
def typed_again(draw) -> tuple[str | None, str | None]:
    """A string and the same string typed again: with one typo, two, or something else altogether."""
    a = draw(st.one_of(st.none(), texts))
    if a is None or draw(st.integers(0, 5)) == 0:
        return a, draw(st.one_of(st.none(), texts))
    b = a
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(b)))
        c = draw(st.sampled_from(_ALPHABET))
        edit = draw(st.sampled_from(["sub", "swap", "insert", "delete"]))
        if edit == "sub" and i < len(b):
            b = b[:i] + c + b[i + 1:]
        elif edit == "swap" and i + 1 < len(b):
            b = b[:i] + b[i + 1] + b[i] + b[i + 2:]
        elif edit == "insert":
            b = b[:i] + c + b[i:]
        elif edit == "delete" and i < len(b):
            b = b[:i] + b[i + 1:]
    return a, b


def _osa(a: str | None, b: str | None) -> int:
    return OSA.distance(a or "", b or "")


@settings(max_examples=300, deadline=None)
@given(st.lists(typed_again(), max_size=60))
def test_within_one_is_rapidfuzz_capped_at_two(pairs):
    a = pl.Series([p[0] for p in pairs], dtype=pl.String)
    b = pl.Series([p[1] for p in pairs], dtype=pl.String)
    assert osa_within_one(a, b).to_list() == [min(_osa(x, y), 2) for x, y in pairs]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(typed_again(), st.booleans()), max_size=60))
def test_distances_are_rapidfuzz_where_asked(rows):
    a = pl.Series([r[0][0] for r in rows], dtype=pl.String)
    b = pl.Series([r[0][1] for r in rows], dtype=pl.String)
    asked = pl.Series([r[1] for r in rows], dtype=pl.Boolean)
    got = osa_distances(a, b, where=asked).to_list()
    want = [_osa(x, y) if ok or (x or "") == (y or "") else None for (x, y), ok in rows]
    assert got == want
    assert osa_distances(a, b).to_list() == [_osa(x, y) for (x, y), _ in rows]


def test_ids_and_phones_one_typo_apart():
    typed = {
        "110101199003071235": 1,  # a substitution
        "110101199007031234": 2,  # two digits swapped that are not neighbours
        "110101199003071243": 1,  # neighbours swapped
        "110101199003071293": 2,  # the last two changed, one of them into the other's digit: not a swap
        "110101199003071249": 2,  # the same the other way round
        "11010119900307123": 1,  # a digit left out
        "1101011990030712345": 1,  # one typed twice
    }
    ids = pl.Series(["110101199003071234"] * len(typed) + [None])
    assert osa_within_one(ids, pl.Series([*typed, "110101199003071234"])).to_list() == [*typed.values(), 2]


def test_chinese_names_one_typo_apart():
    """Names of Chinese characters are read three bytes a character: a byte that differs inside one character
    is one edit, two characters swapped are one, two characters changed are two."""
    typed = {"王小明": 0, "王晓明": 1, "王明小": 1, "汪晓明": 2, "王小": 1, "王小明明": 1, "小王明": 1, "王é明": 1,
             "王𠀀明": 1, "é𠀀明": 2, None: 2}
    names = pl.Series(["王小明"] * len(typed))
    assert osa_within_one(names, pl.Series(list(typed), dtype=pl.String)).to_list() == list(typed.values())
    # 明 and 昏 share their first two bytes: one edit, whichever bytes differ inside it
    assert osa_within_one(pl.Series(["明明", "明"]), pl.Series(["昏明", None])).to_list() == [1, 1]


def test_within_one_reads_slices_and_chunks_with_nulls():
    """The strings are read from their Arrow buffers: a slice of a longer series (its first string not at the
    start of the validity bitmap) and a series of several chunks give what the same strings alone give."""
    left = ["王小明", None, "110101199003071234", "", "138****5678", None, "明明", "ab", "x" * 9, "王晓明"]
    right = ["王晓明", "a", None, "", "138****5687", None, "昏明", "ba", "x" * 11, "王明"]
    want = [min(_osa(x, y), 2) for x, y in zip(left, right, strict=True)]
    a, b = pl.Series(left, dtype=pl.String), pl.Series(right, dtype=pl.String)
    for start in range(len(left)):
        assert osa_within_one(a.slice(start), b.slice(start)).to_list() == want[start:], start
    chunked_a = pl.concat([a.slice(0, 3), a.slice(3)], rechunk=False)
    chunked_b = pl.concat([b.slice(0, 7), b.slice(7)], rechunk=False)
    assert chunked_a.n_chunks() == 2
    assert osa_within_one(chunked_a, chunked_b).to_list() == want
    assert osa_within_one(a.slice(3, 0), b.slice(3, 0)).to_list() == []
    # Arrow arrays sliced in place (an offset into their buffers and bitmap), as polars does not hand them out
    arrow_a, arrow_b = pa.array(left, pa.string()), pa.array(right, pa.large_string())
    for start in range(len(left)):
        assert arrow_within_one(arrow_a.slice(start), arrow_b.slice(start)).tolist() == want[start:], start
