"""The rules applied to a city's roster a part at a time, and the parts put back together; and the last
refresh's rulings with only the residents whose inputs changed ruled again.

A resident's status (sixty columns) depends on nothing but the resident, their own linked records and
their own call outcomes, so the roster can be ruled in parts of a fixed size: memory holds one part's
status, not a city's (at 5M residents the whole status was a few GiB, at 20M it would not fit). What
leaves a part is small: its call list rows, its residents' part in their grids' counts (a row of booleans
each), the inputs of escalation for its untested residents, its wrong numbers, and the few columns the
change figures read of the residents who were on the last list. Putting the parts back together gives what
ruling the whole roster at once gives, row for row and in the same order.

For the same reason a refresh that knows which residents' inputs changed (new or relinked records, new call
outcomes; the same roster, round and settings) rules only those and puts their rows in place of their old
ones among the last refresh's (RosterRules, kept by flows.kept_rules): every row carries the resident's
roster position, and every grid count is a sum, so the old residents' part is taken off and the new put back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from transforms.changes import EARLIER, ESCALATION_INPUTS, escalation_rows, order_escalation
from transforms.coverage import GRID, grid_measures, grid_totals, measures_by_grid, resident_measures, roll_up
from transforms.outcomes import EscalationSettings, no_outcomes
from transforms.roster_gaps import wrong_numbers
from transforms.rules import Round, RuleSettings, build_call_list, resident_status

# What mark_changes reads of a resident who came off the list.
CAME_OFF_COLUMNS = ["resident_id", "tested_in_round", "away_reported", "vaccination_reason"]
POS = "_pos"  # a resident's row number in the roster: where their rows go back among the kept ones
PART = "_part"  # the number of the part a resident is ruled in
VACCINATION_REASONS = ("unvaccinated", "dose_due", "booster_due")  # each also a grid measure of that name


@dataclass(frozen=True)
class RuleInputs:
    """What every part is ruled with besides its residents and their evidence."""
    round: Round
    rules: RuleSettings
    escalation: EscalationSettings
    outcomes: pl.DataFrame = field(default_factory=no_outcomes)  # transforms.outcomes.outcome_summary
    previous: pl.DataFrame | None = None  # the last refresh's call list (resident_id, reason, list); None: first run
    earlier: pl.DataFrame | None = None  # transforms.changes.EARLIER; None: no earlier refresh


@dataclass
class RosterRules:
    """What ruling residents leaves, kept between refreshes: every frame carries POS or is in roster order."""
    call_list: pl.DataFrame  # CALL_LIST columns and POS: untested rows by POS, then vaccination rows by POS
    measures: pl.DataFrame  # resident_measures and tested_in_round: a row per resident ruled, by POS
    grids: pl.DataFrame  # transforms.coverage.grid_measures of the residents ruled, one row per grid
    escalation_inputs: pl.DataFrame  # ESCALATION_INPUTS and POS of the untested residents, by POS
    wrong_numbers: pl.DataFrame  # ROSTER_CORRECTIONS columns and POS, by POS


@dataclass
class RulePart:
    rules: RosterRules  # of the part's residents
    came_off: pl.DataFrame  # CAME_OFF_COLUMNS of the part's residents on the last refresh's list


def part_numbers(positions: pl.DataFrame | pl.LazyFrame, part_rows: int, *, by_rank: bool = False) -> pl.LazyFrame:
    """resident_id and the number of the part each resident of positions (resident_id, POS, by POS) is ruled
    in: by roster position, part_rows positions a part (the whole roster ruled); or, by_rank, part_rows of
    these residents a part (a few of a city's ruled again: at 20M about 940,000 residents in one part instead
    of twenty parts of about 47,000, each paying a part's fixed cost)."""
    number = pl.int_range(pl.len(), dtype=pl.UInt32) if by_rank else pl.col(POS)
    return positions.lazy().select("resident_id", (number // part_rows).cast(pl.UInt32).alias(PART))


def numbered_by_part(evidence: pl.DataFrame | pl.LazyFrame, parts: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The evidence of the residents in parts (part_numbers) with the number of the part each is ruled in, so
    that a part's evidence is a filter on a number: finding it by the part's resident ids probed the city's
    every record once a part (at 20M, 64 M records twenty times)."""
    return evidence.lazy().join(parts.lazy(), on="resident_id", how="inner", maintain_order="left").collect()


def of_part(evidence: pl.DataFrame, part: int) -> pl.DataFrame:
    """A part's evidence from numbered_by_part, in the evidence's order."""
    return evidence.filter(pl.col(PART) == part).drop(PART)


def rule_part(residents: pl.DataFrame, test_evidence: pl.DataFrame, vaccination_evidence: pl.DataFrame,
              given: RuleInputs) -> RulePart:
    """residents: roster rows with their POS, in roster order; the evidence: theirs (of_part), in the
    evidence's order."""
    status = resident_status(residents, test_evidence, vaccination_evidence, given.round, given.rules,
                             given.outcomes)
    call_list = build_call_list(status, keep=(POS,))
    untested = call_list.filter(pl.col("reason") == "untested").select("resident_id")
    came_off = status.clear().select(CAME_OFF_COLUMNS)
    if given.previous is not None:
        # The last list's residents narrowed to this part's first: the part is a twentieth of a city, the
        # last list (9 M rows at 20M) is read once a part, and deduplicating it each time cost 2.5 s a part.
        mine = given.previous.select("resident_id").join(residents.select("resident_id"), on="resident_id",
                                                          how="semi").unique()
        came_off = status.select(CAME_OFF_COLUMNS).join(mine, on="resident_id", how="semi")
    rules = RosterRules(
        call_list=call_list,
        measures=resident_measures(status).with_columns(status["tested_in_round"]),
        grids=grid_measures(status),
        escalation_inputs=status.join(untested, on="resident_id", how="semi", maintain_order="left").select(
            *ESCALATION_INPUTS, POS),
        wrong_numbers=wrong_numbers(status).with_columns(
            status.filter(pl.col("wrong_number"))[POS]),
    )
    return RulePart(rules=rules, came_off=came_off)


# The call list's order as one number: untested rows by roster position, then vaccination rows by roster
# position, as build_call_list lists one status's (a resident is on it at most once for each).
LIST_ORDER = (pl.col("reason") != "untested").cast(pl.UInt64) * (1 << 32) + pl.col(POS).cast(pl.UInt64)


def _merged(kept: pl.DataFrame, gone: pl.Expr, again: pl.DataFrame, order: pl.Expr) -> pl.DataFrame:
    """kept's rows less those gone, and again's, in the order given (a number unique to each row), taking kept's
    columns out of it as it goes. The rows' order is found on the one number; each column is then gathered in
    it from kept's and again's and let go, where filtering, concatenating and sorting the frames held three
    copies of every column at once (at 20M the kept list is 9 M rows of nineteen columns, 16 bytes a text value:
    the two-hourly refresh's peak, 6 GB above the rest for a few seconds). The one number: at 20M the list's
    rows sorted by it in 1.8 s, by reason then position in 5.7 s, merge_sorted with the text columns 10 s."""
    keys = kept.select(order.alias("o"), gone.alias("g")).with_row_index("i").filter(~pl.col("g"))
    at = pl.concat([keys.select("i", "o"), again.select(order.alias("o")).with_row_index("i", offset=kept.height)],
                   how="vertical").sort("o")["i"]
    del keys
    # Each column in one piece before it is gathered: a kept list read from parquet is in many, and gathering
    # across them took 3.6 s at 20M against 1.5 (the one-column copy is let go with the column).
    return pl.DataFrame([pl.concat([kept.drop_in_place(name), again[name]], rechunk=True).gather(at)
                         for name in kept.columns])


def gather(parts: list[RulePart]) -> tuple[RosterRules, pl.DataFrame]:
    """The parts' rules as one (parts in roster order), and their came_off rows."""
    def cat(name: str) -> pl.DataFrame:
        return pl.concat([getattr(p.rules, name) for p in parts], how="vertical", rechunk=True)

    untested = pl.col("reason") == "untested"
    call_list = pl.concat([p.rules.call_list.filter(untested) for p in parts]
                          + [p.rules.call_list.filter(~untested) for p in parts], rechunk=True)
    rules = RosterRules(call_list=call_list, measures=cat("measures"), grids=grid_totals(cat("grids")),
                        escalation_inputs=cat("escalation_inputs"), wrong_numbers=cat("wrong_numbers"))
    return rules, pl.concat([p.came_off for p in parts], how="vertical", rechunk=True)


def splice(kept: RosterRules, places: pl.DataFrame, again: RosterRules) -> RosterRules:
    """The kept rules with some residents ruled again: places holds their POS and GRID columns in roster
    order, again (gather) their new rules, row for row with places. kept's call list, escalation inputs and
    wrong numbers are emptied (their columns taken, _merged), so a city's list is not held twice."""
    pos = places[POS]
    gone = pl.col(POS).is_in(pos.implode())
    measures = kept.measures.with_columns(
        kept.measures[name].clone().scatter(pos, again.measures[name]) for name in kept.measures.columns)
    # Every count is a sum: the residents' old part is taken off their grids and the new one put on.
    before = measures_by_grid(places, kept.measures[pos].drop("tested_in_round"))
    wide = {m: pl.Int64 for m in kept.grids.columns if m not in GRID}
    negated = before.select(*GRID, *(-pl.col(m).cast(pl.Int64) for m in wide))
    grids = grid_totals(pl.concat([kept.grids.cast(wide), negated, again.grids.cast(wide)], how="vertical"))
    return RosterRules(
        call_list=_merged(kept.call_list, gone, again.call_list, LIST_ORDER),
        measures=measures,
        grids=grids.cast({m: kept.grids.schema[m] for m in wide}),
        escalation_inputs=_merged(kept.escalation_inputs, gone, again.escalation_inputs, pl.col(POS)),
        wrong_numbers=_merged(kept.wrong_numbers, gone, again.wrong_numbers, pl.col(POS)),
    )


def came_off_of(listed: pl.DataFrame, measures: pl.DataFrame) -> pl.DataFrame:
    """CAME_OFF_COLUMNS of the residents of a list (resident_id, POS; a resident may be on it twice), from
    the roster's measures: the vaccination reason is the one measure of a reason that is true."""
    one = listed.select("resident_id", POS).unique(POS, maintain_order=True)
    m = measures[one[POS]]
    reason = pl.lit(None, pl.String)
    for name in reversed(VACCINATION_REASONS):
        reason = pl.when(pl.col(name)).then(pl.lit(name)).otherwise(reason)
    return one.select("resident_id").hstack(
        m.select("tested_in_round", "away_reported", reason.alias("vaccination_reason")).get_columns())


@dataclass
class Ruled:
    call_list: pl.DataFrame
    coverage: pl.DataFrame
    escalation: pl.DataFrame
    wrong_numbers: pl.DataFrame
    came_off: pl.DataFrame
    tested: int
    away_reported: int
    ruled_again: pl.DataFrame | None = None  # resident_id of those ruled again; None: everyone was ruled

    def let_go(self) -> None:
        """Drops the lists once the flow has taken what it needs: Prefect keeps a task's return value until
        the flow ends, and the call list here is a city's (the marked one that is published is another)."""
        for name in ("call_list", "escalation", "wrong_numbers", "came_off"):
            setattr(self, name, getattr(self, name).clear())


def finish(rules: RosterRules, came_off: pl.DataFrame, given: RuleInputs,
           ruled_again: pl.DataFrame | None = None) -> Ruled:
    """What the flow publishes of the whole roster's rules: the escalation is found here, from the untested
    residents' inputs and the round's earlier refreshes, which change every refresh for everyone on it."""
    escalation = escalation_rows(rules.escalation_inputs, rules.call_list,
                                 EARLIER if given.earlier is None else given.earlier, given.escalation)
    return Ruled(
        call_list=rules.call_list.drop(POS), coverage=roll_up(rules.grids), escalation=order_escalation(escalation),
        wrong_numbers=rules.wrong_numbers.drop(POS), came_off=came_off,
        tested=int(rules.measures["tested_in_round"].sum()), away_reported=int(rules.measures["away_reported"].sum()),
        ruled_again=ruled_again,
    )
