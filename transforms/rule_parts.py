"""The rules applied to a city's roster a part at a time, what each resident's ruling leaves, and the city's
lists and counts made from that.

A resident's status (sixty columns) depends on nothing but the resident, their own linked records and
their own call outcomes. So the roster is ruled in parts of a fixed size (memory holds one part's status,
not a city's), and what a resident's ruling leaves, their products (a few facts, their call-list rows, a
wrong number), is the same whichever part they were ruled in, or whichever refresh: a refresh keeps them
and rules again only the residents whose inputs changed (transforms.resident_digests). The city's call
list, coverage, escalation and change figures are then made from every resident's products by one function
(finish), whether the products were made now or kept, so both give the same result row for row.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.changes import escalation_rows, order_escalation
from transforms.coverage import GRID, grid_measures, roll_up
from transforms.outcomes import EscalationSettings
from transforms.roster_gaps import wrong_numbers
from transforms.rules import Round, RuleSettings, build_call_list, resident_status

_NO_EARLIER = pl.DataFrame(schema={"resident_id": pl.String, "earlier_untested_refreshes": pl.UInt32})
# What mark_changes reads of a resident who came off the list.
CAME_OFF_COLUMNS = ["resident_id", "tested_in_round", "away_reported", "vaccination_reason"]
# What escalation reads of an untested resident besides their call-list row.
CALL_FACTS = ["refused", "unreachable_attempts", "call_attempts", "last_outcome"]
# A resident's facts kept after ruling: what coverage (transforms.coverage), the change figures and the
# escalation read of them. Their place and name are the roster's, read again at every refresh.
FACT_COLUMNS = list(dict.fromkeys([
    *CAME_OFF_COLUMNS, "status", "in_scope_testing", "test_candidate", "vaccination_eligible", "doses",
    "series_doses", *CALL_FACTS]))


@dataclass(frozen=True)
class RuleInputs:
    """What every part is ruled with besides its residents and their evidence."""
    round: Round
    rules: RuleSettings
    escalation: EscalationSettings
    outcomes: pl.DataFrame | None = None  # transforms.outcomes.outcome_summary; None: no calls made yet
    previous: pl.DataFrame | None = None  # the last refresh's call list (resident_id, reason, list); None: first run
    earlier: pl.DataFrame | None = None  # transforms.outcomes.previous_untested_counts; None: no earlier refresh


@dataclass
class Products:
    """What ruling some residents leaves, one resident's rows independent of any other's."""
    facts: pl.DataFrame  # FACT_COLUMNS, one row per resident (and their digest, when kept)
    call_list: pl.DataFrame  # CALL_LIST rows: none, one or two per resident
    wrong_numbers: pl.DataFrame  # ROSTER_CORRECTIONS rows

    def only(self, residents: pl.DataFrame) -> Products:
        """These residents' products (residents: resident_id)."""
        def mine(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.join(residents, on="resident_id", how="semi", maintain_order="left")
        return Products(mine(self.facts), mine(self.call_list), mine(self.wrong_numbers))


def concat_products(products: list[Products]) -> Products:
    def cat(name: str) -> pl.DataFrame:
        return pl.concat([getattr(p, name) for p in products], how="vertical", rechunk=True)
    return Products(cat("facts"), cat("call_list"), cat("wrong_numbers"))


def split_kept(last: Products, digests: pl.DataFrame) -> tuple[Products, pl.DataFrame]:
    """last: products kept with their digest; digests: every roster resident's now (resident_id, digest).
    Returns the kept products still good (their resident's inputs unchanged) and the residents to rule
    (resident_id: changed, or new to the roster); those gone from the roster are dropped with theirs."""
    same = digests.join(last.facts.select("resident_id", "digest"), on=["resident_id", "digest"], how="semi")
    todo = digests.join(same, on="resident_id", how="anti").select("resident_id")
    return last.only(same.select("resident_id")), todo


def with_kept(ruled_now: Products, digests: pl.DataFrame, reused: Products | None) -> Products:
    """The products to keep for the next refresh: those made now with their residents' digests, after
    those kept that were still good (split_kept)."""
    now = Products(ruled_now.facts.join(digests, on="resident_id", how="left"), ruled_now.call_list,
                   ruled_now.wrong_numbers)
    return now if reused is None else concat_products([reused, now])


def for_residents(evidence: pl.DataFrame, residents: pl.DataFrame) -> pl.DataFrame:
    """The evidence about these residents only (a part's), in the evidence's order."""
    return evidence.join(residents.select("resident_id"), on="resident_id", how="semi", maintain_order="left")


def rule_residents(residents: pl.DataFrame, test_evidence: pl.DataFrame, vaccination_evidence: pl.DataFrame,
                   given: RuleInputs) -> Products:
    """residents: a part of the roster; the evidence may be the city's (only these residents' is read)."""
    status = resident_status(residents, for_residents(test_evidence, residents),
                             for_residents(vaccination_evidence, residents), given.round, given.rules, given.outcomes)
    return Products(facts=status.select(FACT_COLUMNS), call_list=build_call_list(status),
                    wrong_numbers=wrong_numbers(status))


@dataclass
class Ruled:
    call_list: pl.DataFrame
    coverage: pl.DataFrame
    escalation: pl.DataFrame
    wrong_numbers: pl.DataFrame
    came_off: pl.DataFrame
    tested: int
    away_reported: int

    def let_go(self) -> None:
        """Drops the lists once the flow has taken what it needs: Prefect keeps a task's return value until
        the flow ends, and the call list here is a city's (the marked one that is published is another)."""
        for name in ("call_list", "escalation", "wrong_numbers", "came_off"):
            setattr(self, name, getattr(self, name).clear())


def finish(products: Products, places: pl.DataFrame, given: RuleInputs) -> Ruled:
    """The city's lists and counts from every roster resident's products, as ruling the whole roster at once
    gives them. places: resident_id and GRID of every roster resident, in roster order. The call list is its
    untested rows in roster order, then its vaccination rows in roster order, as build_call_list lists them."""
    c = pl.col
    order = places.select("resident_id").with_row_index("_at")
    facts = places.join(products.facts, on="resident_id", how="left", maintain_order="left")
    missing = facts.filter(c("in_scope_testing").is_null()).height
    if missing:
        raise ValueError(f"{missing} roster residents were not ruled")  # a bug: every resident has products
    listed = products.call_list.join(order, on="resident_id", how="inner")
    call_list = listed.sort(c("reason") != "untested", "_at").drop("_at")
    untested = call_list.filter(c("reason") == "untested")
    # escalation_rows reads a status: the untested residents' call-list rows are their status's place, name,
    # phone, address and tags, and their facts the calls made.
    untested_status = untested.join(products.facts.select("resident_id", *CALL_FACTS), on="resident_id", how="left")
    escalation = escalation_rows(untested_status, untested, _NO_EARLIER if given.earlier is None else given.earlier,
                                 given.escalation)
    came_off = facts.clear().select(CAME_OFF_COLUMNS)
    if given.previous is not None:
        came_off = facts.join(given.previous.select("resident_id").unique(), on="resident_id",
                              how="semi").select(CAME_OFF_COLUMNS)
    return Ruled(
        call_list=call_list, coverage=roll_up(grid_measures(facts.select(*GRID, *FACT_COLUMNS))),
        escalation=order_escalation(escalation), wrong_numbers=products.wrong_numbers, came_off=came_off,
        tested=int(facts["tested_in_round"].sum()), away_reported=int(facts["away_reported"].sum()),
    )
