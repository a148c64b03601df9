"""The decisions of a refresh in one sorted order (by record_kind, then record_id: matches.csv's) without
sorting a city's decisions again: the last refresh's, already sorted, merged with the few made now.

Kept apart from transforms.decision: the decisions' code is part of the fingerprint that keeps stored
decisions (flows.refresh.linking_code_fingerprint), and putting them in order changes no decision.
"""

from __future__ import annotations

import polars as pl


def merge_sorted_links(base: pl.LazyFrame, extra: pl.LazyFrame) -> pl.LazyFrame:
    """Decisions on two sets of records as one, sorted by record_kind then record_id: base already sorted so
    (a city's, merged in one pass, never sorted again), extra in any order (the few made now)."""
    key = pl.concat_str("record_kind", pl.lit("\x00"), "record_id").alias("_key")  # NUL sorts before any text
    extra = extra.cast(base.collect_schema()).with_columns(key).sort("_key")
    return base.with_columns(key).set_sorted("_key").merge_sorted(extra, key="_key").drop("_key")
