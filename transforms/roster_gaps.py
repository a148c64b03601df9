"""Gaps in the roster the records reveal: people tested here who are on no roster (待登记人员), and roster
rows that need correcting (a wrong phone reported by a worker, two rows that look like one person)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from transforms.contract import ROSTER_CORRECTIONS, UNREGISTERED
from transforms.idcard import mask_id

_PLACE = ["street", "community", "grid_id", "grid_worker"]
# What the unregistered list reads of a test record (flows.lone_facts keeps them for the records with no decision).
UNREGISTERED_FACTS = ["record_id", "name", "phone", "id_clean", "address", "site", "sampled_at", "addr_block"]


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


def unlinked_tests(record_ids: pl.DataFrame | pl.LazyFrame, links: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """record_id of the test records (record_ids: record_id) that have no decision in links (record_kind,
    record_id), not even 'possible': the records unregistered() looks among."""
    linked = links.lazy().filter(pl.col("record_kind") == "test").select("record_id")
    return record_ids.lazy().select("record_id").join(linked, on="record_id", how="anti").collect()


def unregistered(lone: pl.DataFrame | pl.LazyFrame, places: RosterPlaces, since: datetime, as_of: datetime
                 ) -> pl.DataFrame:
    """The test records of the round that match no resident (lone: UNREGISTERED_FACTS of the records
    unlinked_tests finds), whose current address is a building on the roster (-> that building's grid) or
    whose sampling site is named after one of the roster's communities (-> that community; the grid is left
    for the community to assign).
    The records are given, not found here: at 20M finding them among 39 M tests and 37 M decisions took 6-8 s,
    and reading their facts among the tests 6 s more (flows.kept_links keeps which they are, flows.lone_facts
    their facts)."""
    lone = (
        lone.lazy()
        .select(UNREGISTERED_FACTS)
        .filter(pl.col("sampled_at").is_between(since.replace(tzinfo=None), as_of.replace(tzinfo=None)))
        .collect()
    )
    buildings, all_communities = places.buildings, places.communities
    by_building = lone.join(buildings, on="addr_block", how="inner").with_columns(
        pl.lit("现住址为本网格在册楼栋").alias("why"))
    # A community name found in two streets cannot say which is meant: such sites place nobody (sending
    # the record to every community of that name would bury each secretary's list under the others').
    communities = all_communities.filter(pl.len().over("community") == 1)
    rest = lone.join(by_building.select("record_id"), on="record_id", how="anti")
    # The site's name begins with the community's (longest name first, so 科技园北 is not taken for 科技园).
    names = sorted(all_communities["community"].unique().to_list(), key=len, reverse=True)
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")" if names else "^$^"
    by_site = (
        rest.with_columns(pl.col("site").str.extract(pattern, 1).alias("community"))
        .filter(pl.col("community").is_not_null())
        .join(communities, on="community", how="inner")
        .with_columns(pl.lit(None, pl.String).alias("grid_id"), pl.lit(None, pl.String).alias("grid_worker"),
                      pl.lit("在本社区采样点采样，未匹配在册人员").alias("why"))
    )
    both = pl.concat([by_building, by_site.select(by_building.columns)], how="vertical_relaxed")
    return both.with_columns(
        mask_id("id_clean").alias("id_masked"),
        pl.col("sampled_at").dt.strftime("%Y-%m-%d %H:%M").alias("sampled_at"),
    ).sort("street", "community", "grid_id", "address", "record_id", nulls_last=True).select(UNREGISTERED.names)


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
