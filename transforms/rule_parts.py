"""The rules applied to a city's roster a part at a time, and the parts put back together.

A resident's status (sixty columns) depends on nothing but the resident, their own linked records and
their own call outcomes, so the roster can be ruled in parts of a fixed size: memory holds one part's
status, not a city's (at 5M residents the whole status was a few GiB, at 20M it would not fit). What
leaves a part is small: its call list rows, its grids' counts, its escalated residents, its wrong numbers,
and the few columns the change figures read of the residents who were on the last list. Putting the parts
back together gives what ruling the whole roster at once gives, row for row and in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.changes import EARLIER, escalation_rows, order_escalation
from transforms.coverage import grid_measures, roll_up
from transforms.outcomes import EscalationSettings
from transforms.roster_gaps import wrong_numbers
from transforms.rules import Round, RuleSettings, build_call_list, resident_status

# What mark_changes reads of a resident who came off the list.
CAME_OFF_COLUMNS = ["resident_id", "tested_in_round", "away_reported", "vaccination_reason"]


@dataclass(frozen=True)
class RuleInputs:
    """What every part is ruled with besides its residents and their evidence."""
    round: Round
    rules: RuleSettings
    escalation: EscalationSettings
    outcomes: pl.DataFrame | None = None  # transforms.outcomes.outcome_summary; None: no calls made yet
    previous: pl.DataFrame | None = None  # the last refresh's call list (resident_id, reason, list); None: first run
    earlier: pl.DataFrame | None = None  # transforms.changes.EARLIER; None: no earlier refresh


@dataclass
class RulePart:
    call_list: pl.DataFrame  # CALL_LIST columns, untested first, each in the part's roster order
    grids: pl.DataFrame  # transforms.coverage.grid_measures
    escalation: pl.DataFrame  # transforms.changes.escalation_rows
    wrong_numbers: pl.DataFrame  # ROSTER_CORRECTIONS columns
    came_off: pl.DataFrame  # CAME_OFF_COLUMNS of the part's residents on the last refresh's list
    tested: int
    away_reported: int


PART = "_part"


def numbered_by_part(evidence: pl.DataFrame | pl.LazyFrame, resident_ids: pl.DataFrame | pl.LazyFrame,
                     part_rows: int) -> pl.DataFrame:
    """The evidence with the number of the roster part its resident is in (resident_ids: the roster's
    resident_id in roster order), so that a part's evidence is a filter on a number: finding it by the part's
    resident ids probed the city's every record once a part (at 20M, 64 M records twenty times)."""
    parts = resident_ids.lazy().select("resident_id").with_row_index(PART).with_columns(
        (pl.col(PART) // part_rows).cast(pl.UInt32))
    return evidence.lazy().join(parts, on="resident_id", how="inner", maintain_order="left").collect()


def of_part(evidence: pl.DataFrame, part: int) -> pl.DataFrame:
    """A part's evidence from numbered_by_part, in the evidence's order."""
    return evidence.filter(pl.col(PART) == part).drop(PART)


def rule_part(residents: pl.DataFrame, test_evidence: pl.DataFrame, vaccination_evidence: pl.DataFrame,
              given: RuleInputs) -> RulePart:
    """residents: a part of the roster; the evidence: theirs (of_part), in the evidence's order."""
    status = resident_status(residents, test_evidence, vaccination_evidence, given.round, given.rules,
                             given.outcomes)
    call_list = build_call_list(status)
    came_off = status.clear().select(CAME_OFF_COLUMNS)
    if given.previous is not None:
        # The last list's residents narrowed to this part's first: the part is a twentieth of a city, the
        # last list (9 M rows at 20M) is read once a part, and deduplicating it each time cost 2.5 s a part.
        mine = given.previous.select("resident_id").join(residents.select("resident_id"), on="resident_id",
                                                          how="semi").unique()
        came_off = status.select(CAME_OFF_COLUMNS).join(mine, on="resident_id", how="semi")
    return RulePart(
        call_list=call_list, grids=grid_measures(status),
        escalation=escalation_rows(status, call_list, EARLIER if given.earlier is None else given.earlier,
                                   given.escalation),
        wrong_numbers=wrong_numbers(status), came_off=came_off,
        tested=int(status["tested_in_round"].sum()), away_reported=int(status["away_reported"].sum()),
    )


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


def combine(parts: list[RulePart]) -> Ruled:
    """The parts (in roster order) put together as if the roster had been ruled whole: the call list's
    untested rows in roster order, then its vaccination rows in roster order, as build_call_list lists them."""
    def cat(name: str) -> pl.DataFrame:
        return pl.concat([getattr(p, name) for p in parts], how="vertical", rechunk=True)

    untested = pl.col("reason") == "untested"
    call_list = pl.concat([p.call_list.filter(untested) for p in parts]
                          + [p.call_list.filter(~untested) for p in parts], rechunk=True)
    return Ruled(
        call_list=call_list, coverage=roll_up(cat("grids")), escalation=order_escalation(cat("escalation")),
        wrong_numbers=cat("wrong_numbers"), came_off=cat("came_off"),
        tested=sum(p.tested for p in parts), away_reported=sum(p.away_reported for p in parts),
    )
