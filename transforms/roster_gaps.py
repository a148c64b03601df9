"""Gaps in the roster: where a building or a community is (the unregistered list places people by it,
transforms.unregistered), and roster rows that need correcting (a wrong phone reported by a worker, two
rows that look like one person)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.contract import ROSTER_CORRECTIONS

_PLACE = ["street", "community", "grid_id", "grid_worker"]


@dataclass
class RosterPlaces:
    """Where an unregistered person's test places them, from the roster alone: each building's grid, and the
    roster's communities (street, community)."""
    buildings: pl.DataFrame  # addr_block, street, community, grid_id, grid_worker
    communities: pl.DataFrame  # street, community


def roster_places(roster: pl.DataFrame | pl.LazyFrame) -> RosterPlaces:
    """Each building belongs to the grid holding most of its residents (on a tie, the first grid by name: the
    groups come in no fixed order). The roster may be a scan of a city's roster on disk: what is read of it
    is counted per building, never held whole."""
    roster = roster.lazy()
    buildings = (
        roster.filter(pl.col("addr_block").is_not_null())
        .group_by("addr_block", *_PLACE).len()
        .sort(["len", *_PLACE], descending=[True, False, False, False, False], nulls_last=True)
        .unique("addr_block", keep="first", maintain_order=True)
        .drop("len").collect()
    )
    return RosterPlaces(buildings, roster.select("street", "community").unique().drop_nulls().collect())


CORRECTION_COLUMNS = ["street", "community", "grid_id", "grid_worker", "resident_id", "name", "address"]
_PERSON_KEY = ["name_py", "birth", "addr_canon"]


def wrong_numbers(status: pl.DataFrame) -> pl.DataFrame:
    """Residents whose phone a worker reported wrong (status: the roster with the workers' outcomes)."""
    return status.filter(pl.col("wrong_number")).select(
        *CORRECTION_COLUMNS, pl.lit("网格员反馈登记电话号码错误，请更正联系电话").alias("problem"),
        pl.lit(None, pl.String).alias("other_resident_id")).select(ROSTER_CORRECTIONS.names)


def duplicate_registrations(roster: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Two rows, one person: the same checked ID, or the same name reading, birth date and flat.
    Only rows whose key occurs twice can pair with another row: the keys are found first (reading one or three
    columns of a roster that may be on disk), then the self-joins run on those rows alone (joining a city's
    whole roster to itself held 2.5 GiB at 5M residents to find a few thousand pairs)."""
    roster = roster.lazy()
    # The IDs met twice are found by their hashes (finding repeated 18-character texts among 20 M took 11 s,
    # their hashes 4 s); a row whose ID only shares a hash with a repeated one pairs with no other row below.
    id_hash = pl.col("id_norm").hash(seed=0)
    repeated = roster.select("id_norm").filter(pl.col("id_norm").is_not_null()).select(
        id_hash.alias("h")).filter(pl.col("h").is_duplicated()).unique().collect()["h"]
    same_id = roster.select(*CORRECTION_COLUMNS, "id_norm").filter(
        pl.col("id_norm").is_not_null() & id_hash.is_in(repeated.implode())).collect()
    id_dups = same_id.join(same_id.select("id_norm", pl.col("resident_id").alias("other_resident_id")),
                           on="id_norm").filter(pl.col("resident_id") != pl.col("other_resident_id")).with_columns(
        pl.lit("与另一人员证件号相同，疑似重复登记").alias("problem"))
    people = roster.select(_PERSON_KEY).filter(
        pl.all_horizontal(pl.col(k).is_not_null() for k in _PERSON_KEY) & pl.struct(_PERSON_KEY).is_duplicated())
    same_person = roster.select(*CORRECTION_COLUMNS, *_PERSON_KEY).join(
        people.unique(), on=_PERSON_KEY, how="semi", maintain_order="left").collect()
    person_dups = same_person.join(
        same_person.select(*_PERSON_KEY, pl.col("resident_id").alias("other_resident_id")), on=_PERSON_KEY,
    ).filter(pl.col("resident_id") != pl.col("other_resident_id")).with_columns(
        pl.lit("与另一人员姓名读音、出生日期、住址相同，疑似重复登记").alias("problem"))
    dups = pl.concat([id_dups.select(ROSTER_CORRECTIONS.names), person_dups.select(ROSTER_CORRECTIONS.names)])
    return dups.unique(["resident_id", "other_resident_id"], keep="first", maintain_order=True)


def order_corrections(wrong: pl.DataFrame, duplicates: pl.DataFrame) -> pl.DataFrame:
    """The correction list by place and resident; a resident's wrong number (no other resident) before their
    duplicates, which are in the other resident's order (the self-joins' order is not fixed)."""
    return pl.concat([wrong, duplicates]).sort(
        "street", "community", "grid_id", "resident_id", "other_resident_id").select(ROSTER_CORRECTIONS.names)


def roster_corrections(status: pl.DataFrame) -> pl.DataFrame:
    """status: the normalised roster with the workers' outcomes (wrong_number)."""
    return order_corrections(wrong_numbers(status), duplicate_registrations(status))
