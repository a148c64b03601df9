"""From candidate pair keys to one decision per record, a slice of records at a time.

The blocking SQL yields keys only; each slice is joined to both sides' identity columns here, compared,
scored and decided, then dropped. All candidates of a record fall in the same slice (decisions weigh a
record's candidates against each other), and memory stays bounded however many pairs there are.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl

from transforms.comparison import (
    EXACT_PAIR_COLUMNS,
    ScoreSettings,
    compare_exact_pairs,
    compare_pairs,
    score_pairs,
)
from transforms.decision import LINK_COLUMNS, DecisionSettings, compact_links, decide_links
from transforms.record_rows import KEYS


def slice_count(n_pairs: int, pairs_per_slice: int) -> int:
    return max(1, math.ceil(n_pairs / max(1, pairs_per_slice)))


def record_batches(records: pl.DataFrame, per_batch: int) -> list[pl.DataFrame]:
    """Consecutive slices of about per_batch records (views, not copies); at least one, even when empty."""
    n = slice_count(records.height, per_batch)
    size = math.ceil(records.height / n) if records.height else 0
    return [records.slice(i * size, size) for i in range(n)]


def record_slices(pairs: pl.DataFrame, pairs_per_slice: int) -> list[pl.DataFrame]:
    """Pairs split by a hash of the record's number (_li), about pairs_per_slice each."""
    n = slice_count(pairs.height, pairs_per_slice)
    if n == 1:
        return [pairs]
    part = (pl.col("_li").hash(seed=0) % n).alias("_slice")
    return pairs.with_columns(part).partition_by("_slice", include_key=False)


def number_residents(residents: pl.DataFrame) -> pl.DataFrame:
    """The residents in resident_id order, each numbered by its row (_ri): the number the linking SQL carries
    a resident by, and, being the rank of the ID, the order it breaks ties in, as the ID itself did.
    A roster already in that order (exports usually are) is not sorted: the sort copied every identity column
    of the roster while the roster itself stayed alive, 1.9 GiB at 5M residents."""
    if not residents["resident_id"].is_sorted():
        residents = residents.sort("resident_id")
    return residents.with_row_index("_ri").rechunk()


def number_records(records: pl.DataFrame) -> pl.DataFrame:
    """A batch of records numbered by its row (_li), the number the linking SQL carries a record by. In one
    chunk: pair_sides takes rows by number, and across the chunks of a Parquet read that is 4x slower."""
    return records.with_row_index("_li").rechunk()


def households(residents: pl.DataFrame, max_members: int) -> pl.DataFrame:
    """Per address with a household (from one to max_members residents with a mobile phone, or with a checked
    ID), its members' phones and IDs, each distinct and sorted (null where that count is out of bounds): the
    comparison's `household` levels. Per address, not per resident, so the roster is not copied. Grouped
    here rather than by DuckDB: at 20M residents 15.7 s, where its two ordered list aggregates and their
    join took 32.7 (the same table). In the order of each address's first resident: a slice's pairs go
    through the residents in order, so the lists of their households are then taken nearly front to back,
    not at random (and grouping in that order took half the time: 7.2 s against 14.1 for a 20M roster).
    Households kept in the database come back in its order, which a two-hour refresh's few pairs can bear."""
    mobile = pl.col("phone_flag") == "mobile"
    phones, ids = pl.col("_phones").is_between(1, max_members), pl.col("_ids").is_between(1, max_members)
    return (residents.lazy().filter(pl.col("addr_canon").is_not_null())
            .group_by("addr_canon", maintain_order=True)
            .agg(_phones=mobile.sum(), _ids=pl.col("id_norm").is_not_null().sum(),
                 household_phones=pl.col("phone_norm").filter(mobile).unique().sort(),
                 household_ids=pl.col("id_norm").drop_nulls().unique().sort())
            .filter(phones | ids)
            .select("addr_canon", pl.when(phones).then("household_phones").alias("household_phones"),
                    pl.when(ids).then("household_ids").alias("household_ids"))
            .collect())


@dataclass(frozen=True)
class RosterSide:
    """The roster as the comparison reads it, prepared once per run however many batches of records:
    residents as number_residents gives them (row i is resident _ri = i), and each resident's household
    row (_hi) in households."""

    residents: pl.DataFrame  # _ri, resident_id, identity columns, _hi
    households: pl.DataFrame  # household_phones, household_ids; one row per address


def household_rows(residents: pl.DataFrame, households: pl.DataFrame) -> pl.Series:
    """_hi: each resident's row in households (by address; null where it has none), in residents' order."""
    return residents.select("addr_canon").join(households.select("addr_canon").with_row_index("_hi"),
                                               on="addr_canon", how="left", maintain_order="left")["_hi"]


def kept_household_rows(households: pl.DataFrame, kept: pl.DataFrame, residents: int) -> pl.Series:
    """household_rows as kept: households carry the row each had when the rows were found (_hi), in any
    order now (as the database gives them back); kept holds (_ri, _hi) of each resident with a household, in
    any order. Each resident's row in households as they are now, in O(residents): joining 20 M addresses
    again took 2.3-3.2 s in every two-hour refresh at 20M residents."""
    now = pl.repeat(0, households.height, dtype=pl.UInt32, eager=True).scatter(
        households["_hi"], pl.int_range(0, households.height, dtype=pl.UInt32, eager=True))
    return pl.repeat(None, residents, dtype=pl.UInt32, eager=True).scatter(
        kept["_ri"], now.gather(kept["_hi"])).alias("_hi")


def roster_side(residents: pl.DataFrame, households: pl.DataFrame, rows: pl.Series | None = None) -> RosterSide:
    """residents: number_residents(resident_id + identity columns). households: households(residents).
    rows: household_rows(residents, households), when known already."""
    rows = household_rows(residents, households) if rows is None else rows
    return RosterSide(residents=residents.with_columns(rows.alias("_hi")).rechunk(),
                      households=households.select("household_phones", "household_ids").rechunk())


def pair_sides(pairs: pl.DataFrame, records: pl.DataFrame, roster: RosterSide,
               columns: list[str] | None = None, households: list[str] | None = None) -> pl.DataFrame:
    """Pairs with the record's columns suffixed _l and the resident's suffixed _r, as compare_pairs reads
    (only `columns` of the identity columns, and the `households` lists, when given); the pair's numbers
    stay for decide_links.
    pairs carry the row numbers _li (in records) and _ri (in residents): taking rows by number costs the
    slice's size, where a join would hash the whole of records and residents again for every slice."""
    left = (records.select(columns) if columns else records.drop(*KEYS, "_li")).gather(pairs["_li"])
    right = roster.residents.select(*(columns or roster.residents.drop("_ri", "resident_id", "_hi").columns), "_hi")
    right = right.gather(pairs["_ri"])
    family = (roster.households.select(households) if households else roster.households).gather(right["_hi"])
    right = pl.concat([right.drop("_hi"), family], how="horizontal")
    return pl.concat([
        pairs,
        left.rename({c: f"{c}_l" for c in left.columns}),
        right.rename({c: f"{c}_r" for c in right.columns}),
    ], how="horizontal")


def decide_pairs(
    pairs: pl.DataFrame,
    records: pl.DataFrame,
    roster: RosterSide,
    scoring: ScoreSettings,
    decision: DecisionSettings,
    pairs_per_slice: int,
) -> pl.DataFrame:
    """pairs: _li, _ri, stage, rule_bits (the linking SQL's candidate_pairs). records: number_records(keys +
    identity columns), the batch the SQL read. Returns LINK_COLUMNS, the repeated ones compacted
    (transforms.decision.compact_links): a run keeps every batch's decisions until linking ends."""
    # In roster order: pair_sides then reads the roster's columns (the larger side) front to back rather
    # than at random, which halves its time; a decision does not depend on the order of the pairs.
    pairs = pairs.sort("_ri")
    decided = [pl.DataFrame(schema={c: pl.String for c in LINK_COLUMNS} | {"score": pl.Float64})]
    # A record's pairs all come from one stage (the exact stage's records are not blocked), so the two are
    # decided apart; the exact stage's pairs need under a third of the columns and comparisons.
    exact = pl.col("stage") == "exact"

    def numbered(part: pl.DataFrame) -> pl.DataFrame:
        """A slice's pairs with the keys its decisions are written under: taken per slice, so the batch's
        pairs are cut and held as numbers, never with three strings a pair."""
        return pl.concat([records.select(KEYS).gather(part["_li"]),
                          roster.residents.select("resident_id").gather(part["_ri"]), part], how="horizontal")

    def exact_slice(part: pl.DataFrame) -> pl.DataFrame:
        part = numbered(part)
        sides = pair_sides(part, records, roster, EXACT_PAIR_COLUMNS, ["household_phones"])
        return decide_links(score_pairs(compare_exact_pairs(sides), scoring), decision)

    def fuzzy_slice(part: pl.DataFrame) -> pl.DataFrame:
        return decide_links(score_pairs(compare_pairs(pair_sides(numbered(part), records, roster)), scoring),
                            decision)

    # Two slices at a time: the compiled edit-distance loop (transforms/edit_distance.py) and parts of each
    # query run on one core, and one slice after another left the other idle a third of the time (at 1M
    # residents, 8.9 s -> 5.4 s, when the edit distances were numpy byte grids). pool.map keeps the slices'
    # order. The peak is the batch's pairs, not the slices in flight: the sorted pairs go once each stage's
    # are taken, and each stage's once they are cut, so the slices are the one copy held while they are
    # decided (on a batch of 2.47 M fuzzy pairs at 1M, 0.93 -> 0.81 GiB above the inputs; slices of half the
    # size took 4.3-4.7 s against 3.6-3.8, about 40 ms a slice).
    exact_pairs, fuzzy_pairs = pairs.filter(exact), pairs.filter(~exact)
    del pairs
    jobs = [(exact_slice, part) for part in record_slices(exact_pairs, pairs_per_slice)]
    del exact_pairs
    jobs += [(fuzzy_slice, part) for part in record_slices(fuzzy_pairs, pairs_per_slice)]
    del fuzzy_pairs
    with ThreadPoolExecutor(max_workers=2) as pool:
        decided += pool.map(lambda job: job[0](job[1]), jobs)
    return compact_links(pl.concat(decided, how="vertical_relaxed"))
