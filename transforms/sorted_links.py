"""The decisions of a refresh in one sorted order (by record_kind, then record_id) without
sorting a city's decisions again: the last refresh's, already sorted, merged with the few made now.

Kept apart from transforms.decision: the decisions' code is part of the fingerprint that keeps stored
decisions (flows.refresh.linking_code_fingerprint), and putting them in order changes no decision.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl


def merge_sorted_links(base: pl.LazyFrame, extra: pl.DataFrame, kinds: Iterable[str]) -> pl.LazyFrame:
    """Decisions on two sets of records as one, sorted by record_kind then record_id: base already sorted so
    (a city's, merged in one pass, never sorted again), extra in any order (the few made now). kinds: every
    record_kind either holds. Merged kind by kind on record_id itself: one key made of both columns meant
    building 68 M strings each time (at 20M the merge and its write took 11.5 s, the write alone 7.0)."""
    extra = extra.cast(base.collect_schema()).sort("record_kind", "record_id")
    return merge_sorted_runs([base, extra.lazy()], {*kinds, *extra["record_kind"].unique().to_list()})


def merge_sorted_runs(runs: list[pl.LazyFrame], kinds: Iterable[str]) -> pl.LazyFrame:
    """Decisions kept as several files, each sorted by record_kind then record_id and no record in two (the
    city's, then the few of each refresh since), read as one in that order: merged kind by kind, never sorted."""
    if len(runs) == 1:
        return runs[0]
    kind = pl.col("record_kind")
    merged = []
    for k in sorted(set(kinds)):
        of_kind = [run.filter(kind == k).set_sorted("record_id") for run in runs]
        one = of_kind[0]
        for other in of_kind[1:]:
            one = one.merge_sorted(other, key="record_id").set_sorted("record_id")
        merged.append(one)
    return pl.concat(merged) if merged else runs[0]


def sorted_column_by_column(columns: list[pl.Series]) -> pl.DataFrame:
    """The decisions of these columns sorted by record_kind then record_id, taking the columns out of the list
    as it goes: each is let go (if nothing else holds it) once its sorted copy is made, where a frame's sort
    holds two copies of every column (on a city's 64 M decisions, 1.91 GiB above them against 4.29; the 20M
    link stage peaked there). Decisions made kind after kind (as a refresh makes them) are ordered by sorting
    each kind's record_id alone, a slice of the column: at 1M residents 0.22 s, against 0.77 for a frame's
    sort and 1.7 for the order of both keys at once."""
    kind, record = (next(c for c in columns if c.name == name) for name in ("record_kind", "record_id"))
    if kind.is_sorted():
        order, start = [], 0
        for length in kind.rle().struct.field("len"):
            order.append(record.slice(start, length).arg_sort().cast(pl.Int64) + start)
            start += length
        order = pl.concat(order) if order else pl.Series(dtype=pl.Int64)
    else:
        order = pl.DataFrame([kind, record]).select(pl.arg_sort_by("record_kind", "record_id")).to_series()
    del kind, record
    out = []
    while columns:
        out.append(columns.pop(0).gather(order))
    return pl.DataFrame(out)
