"""The next slice read and the last one written beside the work on this one (flows.slice_overlap)."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from flows.slice_overlap import SliceOverlap


def _slices(n: int, asked: list[int] | None = None, fail_at: int | None = None):
    for i in range(n):
        if asked is not None:
            asked.append(i)
        if i == fail_at:
            raise ValueError(f"slice {i} is broken")
        yield pl.DataFrame({"i": [i] * 3})


def test_every_slice_is_written_in_order_once_the_block_is_left():
    written, threads = [], set()

    def sink(frame: pl.DataFrame) -> None:
        threads.add(threading.current_thread().name)
        written.append(int(frame["i"][0]))

    seen = []
    with SliceOverlap(_slices(7), sink) as slices:
        for raw in slices:
            seen.append(int(raw["i"][0]))
            slices.write(raw.with_columns(pl.col("i") * 1))
    assert seen == list(range(7))
    assert written == list(range(7))
    assert threads and all(name.startswith("write-behind") for name in threads)


def test_the_next_slice_is_read_while_this_one_is_worked_on():
    asked: list[int] = []
    with SliceOverlap(_slices(3, asked), lambda frame: None) as slices:
        it = iter(slices)
        first = next(it)
        # The caller still holds slice 0; the reader has been asked for slice 1 meanwhile.
        for _ in range(200):
            if len(asked) >= 2:
                break
            threading.Event().wait(0.01)
        assert int(first["i"][0]) == 0 and asked[:2] == [0, 1]
        assert [int(s["i"][0]) for s in it] == [1, 2]


def test_a_broken_slice_is_raised_in_the_caller_after_the_slices_before_it_are_written():
    written = []
    with pytest.raises(ValueError, match="slice 2 is broken"):
        with SliceOverlap(_slices(5, fail_at=2), lambda frame: written.append(int(frame["i"][0]))) as slices:
            for raw in slices:
                slices.write(raw)
    assert written == [0, 1]


def test_a_failed_write_is_raised_at_the_next_write_or_when_the_block_ends():
    def sink(frame: pl.DataFrame) -> None:
        if int(frame["i"][0]) == 1:
            raise OSError("No space left on device")

    done = []
    with pytest.raises(OSError, match="No space left"):
        with SliceOverlap(_slices(4), sink) as slices:
            for raw in slices:
                slices.write(raw)
                done.append(int(raw["i"][0]))
    assert done == [0, 1]  # raised at the write of slice 2

    with pytest.raises(OSError, match="No space left"):
        with SliceOverlap(_slices(2), sink) as slices:  # the last slice's write fails: raised on leaving
            for raw in slices:
                slices.write(raw)
