"""People tested here who are on no roster (待登记人员): the test records no resident matches, placed on the
roster by their building or by a sampling site named after a community.

Where a record is placed depends on its own facts and the roster alone, not on the round: a refresh keeps
each record's place (flows.kept_unregistered) and places only the records that have newly no decision. The
round's window and the sampling time's text are applied to the places each time (unregistered_list).
"""

from __future__ import annotations

import re
from datetime import datetime

import polars as pl

from transforms.contract import UNREGISTERED
from transforms.idcard import mask_id
from transforms.roster_gaps import RosterPlaces

# What the list reads of a test record (flows.lone_facts keeps them for the records with no decision).
UNREGISTERED_FACTS = ["record_id", "name", "phone", "id_clean", "address", "site", "sampled_at", "addr_block"]
# A placed record: the list's columns, its sampling time still a time (the window is applied to it), the ID
# already masked (the full number is not kept with the places).
PLACED = list(UNREGISTERED.names)
LIST_ORDER = ["street", "community", "grid_id", "address", "record_id"]
BY_BUILDING = "现住址为本网格在册楼栋"
BY_SITE = "在本社区采样点采样，未匹配在册人员"


def unlinked_tests(record_ids: pl.DataFrame | pl.LazyFrame, links: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """record_id of the test records (record_ids: record_id) that have no decision in links (record_kind,
    record_id), not even 'possible': the records place_unregistered() looks among."""
    linked = links.lazy().filter(pl.col("record_kind") == "test").select("record_id")
    return record_ids.lazy().select("record_id").join(linked, on="record_id", how="anti").collect()


def place_unregistered(lone: pl.DataFrame | pl.LazyFrame, places: RosterPlaces) -> pl.DataFrame:
    """PLACED for the test records that match no resident (lone: UNREGISTERED_FACTS of the records
    unlinked_tests finds) whose current address is a building on the roster (-> that building's grid) or whose
    sampling site is named after one of the roster's communities (-> that community; the grid is left for the
    community to assign); the records placed nowhere are left out. In no set order."""
    lone = lone.lazy().select(UNREGISTERED_FACTS).collect()
    buildings, all_communities = places.buildings, places.communities
    # Each record once: its building's grid when it has one, else (a null place) the site's turn below.
    located = lone.join(buildings.with_columns(pl.lit(True).alias("_in")), on="addr_block", how="left")
    by_building = located.filter(pl.col("_in")).drop("_in").with_columns(pl.lit(BY_BUILDING).alias("why"))
    rest = located.filter(pl.col("_in").is_null()).select(UNREGISTERED_FACTS)
    # A community name found in two streets cannot say which is meant: such sites place nobody (sending
    # the record to every community of that name would bury each secretary's list under the others').
    communities = all_communities.filter(pl.len().over("community") == 1)
    # The site's name begins with the community's (longest name first, so 科技园北 is not taken for 科技园);
    # each distinct site is matched once (a city's tests come from a few hundred sites).
    names = sorted(all_communities["community"].unique().to_list(), key=len, reverse=True)
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")" if names else "^$^"
    sites = rest.select(pl.col("site").unique()).with_columns(pl.col("site").str.extract(pattern, 1).alias("community"))
    by_site = (
        rest.join(sites.drop_nulls("community"), on="site", how="inner")
        .join(communities, on="community", how="inner")
        .with_columns(pl.lit(None, pl.String).alias("grid_id"), pl.lit(None, pl.String).alias("grid_worker"),
                      pl.lit(BY_SITE).alias("why"))
    )
    both = pl.concat([by_building, by_site.select(by_building.columns)], how="vertical_relaxed")
    return both.with_columns(mask_id("id_clean").alias("id_masked")).select(PLACED)


def in_list_order(*placed: pl.DataFrame) -> pl.DataFrame:
    """The placed records (PLACED) together, by place and address. Kept ones are in this order already, and
    sorting them with a few new ones took 0.4 s at 20M against 1.3 s for the same rows in no order."""
    return pl.concat(placed).sort(LIST_ORDER, nulls_last=True)


def unregistered_list(placed: pl.DataFrame, since: datetime, as_of: datetime) -> pl.DataFrame:
    """The list (UNREGISTERED): the placed records (PLACED, in_list_order) sampled in the round."""
    return (
        placed.lazy()
        .filter(pl.col("sampled_at").is_between(since.replace(tzinfo=None), as_of.replace(tzinfo=None)))
        .with_columns(pl.col("sampled_at").dt.strftime("%Y-%m-%d %H:%M"))
        .select(UNREGISTERED.names)
        .collect()
    )


def unregistered(lone: pl.DataFrame | pl.LazyFrame, places: RosterPlaces, since: datetime, as_of: datetime
                 ) -> pl.DataFrame:
    """The list made from the lone records' facts at once (a refresh keeps the places instead)."""
    return unregistered_list(in_list_order(place_unregistered(lone, places)), since, as_of)
