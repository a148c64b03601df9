"""Ruling only the residents whose inputs changed, with the others' products kept from the last refresh,
gives what ruling the whole roster gives: every list, its order and every count."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

import transforms.evidence as evidence
from transforms.contract import (
    AWAY,
    CONTACTED,
    REFUSED,
    ROSTER,
    TESTS,
    UNREACHABLE,
    VACCINATIONS,
    WRONG_NUMBER,
)
from transforms.coverage import GRID, build_coverage
from transforms.normalise import normalise_people
from transforms.outcomes import EscalationSettings, outcome_summary, previous_untested_counts
from transforms.parsing import LINE, parse_rows
from transforms.resident_digests import resident_digests, roster_hashes
from transforms.rule_parts import RuleInputs, concat_products, finish, rule_residents, split_kept, with_kept
from transforms.rules import Round, RuleSettings, build_call_list, resident_status
from transforms.synthetic import generate

CITY = generate(1200, seed=31)
RND = Round(since=CITY.since, as_of=CITY.as_of)


def _parsed(frame: pl.DataFrame, contract) -> pl.DataFrame:
    raw = frame.select(pl.all().cast(pl.String)).with_columns(
        pl.int_range(2, frame.height + 2).cast(pl.Int64).alias(LINE))
    return normalise_people(parse_rows(raw, contract, as_of=CITY.as_of).rows, contract).drop(LINE)


ROSTER_ROWS = _parsed(CITY.roster, ROSTER)
TEST_ROWS = _parsed(CITY.tests, TESTS)
VACC_ROWS = _parsed(CITY.vaccinations, VACCINATIONS)


def _links(kind: str, truth: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """The true resident of each record, every seventh one only 'possible'."""
    linked = truth.filter(pl.col("resident_id").is_not_null()).join(records.select("record_id"), on="record_id")
    possible = pl.int_range(pl.len()) % 7 == 3
    return linked.select(
        pl.lit(kind).alias("record_kind"), "record_id", "resident_id",
        pl.when(possible).then(pl.lit("possible")).otherwise(pl.lit("match")).alias("decision"),
        pl.when(possible).then(8.5).otherwise(21.0).alias("score"),
        pl.lit("姓名、电话相同").alias("explanation"))


TEST_LINKS = _links("test", CITY.truth_tests, TEST_ROWS)
VACC_LINKS = _links("vaccination", CITY.truth_vaccinations, VACC_ROWS)


def _attempts(residents: list[str], outcomes: list[str], hour: int) -> pl.DataFrame:
    at = CITY.since + timedelta(hours=hour)
    return pl.DataFrame({"resident_id": residents, "reason": ["untested"] * len(residents),
                         "outcome": [outcomes[i % len(outcomes)] for i in range(len(residents))],
                         "recorded_at": [at] * len(residents)},
                        schema={"resident_id": pl.String, "reason": pl.String, "outcome": pl.String,
                                "recorded_at": pl.Datetime("us")})


def _given(attempts: pl.DataFrame, previous: pl.DataFrame | None, earlier: pl.DataFrame | None) -> RuleInputs:
    return RuleInputs(round=RND, rules=RuleSettings(), escalation=EscalationSettings(untested_refreshes=2),
                      outcomes=outcome_summary(attempts), previous=previous, earlier=earlier)


def _evidence(test_links: pl.DataFrame, vacc_links: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return evidence.test_evidence(test_links, TEST_ROWS), evidence.vaccination_evidence(vacc_links, VACC_ROWS)


def _digests(roster: pl.DataFrame, ev: tuple[pl.DataFrame, pl.DataFrame], given: RuleInputs) -> pl.DataFrame:
    return resident_digests(roster_hashes(roster), *ev, given.outcomes)


def _rule_all(roster, ev, given, part_rows=400):
    """Every resident ruled, part_rows at a time."""
    return concat_products([rule_residents(roster.slice(o, part_rows), *ev, given)
                            for o in range(0, roster.height, part_rows)])


def test_ruling_the_changed_residents_gives_what_ruling_everyone_gives():
    ids = ROSTER_ROWS["resident_id"].to_list()
    # The morning: the roster without its last ten residents, 60% of the test records, a few calls.
    morning_roster = ROSTER_ROWS.head(len(ids) - 10)
    morning_ev = _evidence(TEST_LINKS.head(TEST_LINKS.height * 6 // 10), VACC_LINKS)
    morning_calls = _attempts(ids[:40], [UNREACHABLE, REFUSED, CONTACTED, WRONG_NUMBER], 2)
    morning_given = _given(morning_calls, None, None)
    kept = with_kept(_rule_all(morning_roster, morning_ev, morning_given),
                     _digests(morning_roster, morning_ev, morning_given), None)
    morning = finish(kept, morning_roster.select("resident_id", *GRID), morning_given)

    # Two hours later: every test record; one dose now only 'possible'; more calls; one resident bedridden,
    # one moved out, one gone from the roster, ten new ones.
    tags_changed, status_changed, gone = ids[100], ids[200], ids[300]
    roster = ROSTER_ROWS.filter(pl.col("resident_id") != gone).with_columns(
        pl.when(pl.col("resident_id") == tags_changed).then(pl.lit("卧床")).otherwise(pl.col("tags")).alias("tags"),
        pl.when(pl.col("resident_id") == status_changed).then(pl.lit("迁出")).otherwise(pl.col("status"))
        .alias("status"))
    vacc_links = VACC_LINKS.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("possible")).otherwise(pl.col("decision")).alias("decision"))
    ev = _evidence(TEST_LINKS, vacc_links)
    calls = pl.concat([morning_calls, _attempts(ids[30:70], [AWAY, UNREACHABLE, REFUSED], 4)])
    untested_before = morning.call_list.filter(pl.col("reason") == "untested").select(
        pl.lit("morning").alias("run_id"), "resident_id")
    given = _given(calls, morning.call_list.select("resident_id", "reason", "list"),
                   previous_untested_counts(untested_before))

    reused, todo = split_kept(kept, _digests(roster, ev, given))
    now = rule_residents(roster.join(todo, on="resident_id", how="semi"), *ev, given)
    incremental = finish(with_kept(now, _digests(roster, ev, given), reused), roster.select("resident_id", *GRID),
                         given)
    whole = finish(_rule_all(roster, ev, given), roster.select("resident_id", *GRID), given)

    # Only some were ruled again: the new, the changed, those with new records or calls.
    assert 10 < todo.height < roster.height // 2
    assert {tags_changed, status_changed, *ids[-10:], *ids[40:70]} <= set(todo["resident_id"])
    assert gone not in set(reused.facts["resident_id"]) | set(todo["resident_id"])
    assert reused.facts.height + todo.height == roster.height
    for name in ("call_list", "coverage", "escalation", "came_off"):
        assert getattr(incremental, name).equals(getattr(whole, name)), name
    # And ruling in parts, put together, is ruling the whole roster at once.
    status = resident_status(roster, *ev, RND, RuleSettings(), given.outcomes)
    assert whole.call_list.equals(build_call_list(status))
    assert whole.coverage.equals(build_coverage(status))
    wrong = lambda r: r.wrong_numbers.sort("resident_id")  # noqa: E731  (order_corrections orders them)
    assert wrong(incremental).equals(wrong(whole)) and wrong(whole).height > 0
    assert (incremental.tested, incremental.away_reported) == (whole.tested, whole.away_reported)
    assert whole.away_reported > 0 and whole.escalation.height > 0 and whole.came_off.height > 0
    assert incremental.call_list.filter(pl.col("resident_id") == tags_changed)["list"].to_list()[:1] in (
        [], ["home_visit"], ["verify"])
    assert status_changed not in set(incremental.call_list["resident_id"])


def test_a_residents_digest_changes_with_their_inputs_alone_and_not_with_row_order():
    given = _given(_attempts(["R1"], [CONTACTED], 1), None, None)
    ev = _evidence(TEST_LINKS, VACC_LINKS)
    before = _digests(ROSTER_ROWS, ev, given)
    shuffled = tuple(e.sample(fraction=1.0, shuffle=True, seed=3) for e in ev)
    assert before.equals(_digests(ROSTER_ROWS, shuffled, given))

    changed = (ev[0].with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.col("score") + 1)
                                  .otherwise(pl.col("score")).alias("score")), ev[1])
    after = _digests(ROSTER_ROWS, changed, given)
    differ = before.join(after, on="resident_id").filter(pl.col("digest") != pl.col("digest_right"))
    assert differ["resident_id"].to_list() == [ev[0]["resident_id"][0]]


@pytest.mark.parametrize("drop", ["tests", "vaccinations"])
def test_a_record_dropped_changes_its_residents_digest_alone(drop):
    given = _given(_attempts([], [CONTACTED], 1), None, None)
    tests, vacc = _evidence(TEST_LINKS, VACC_LINKS)
    before = _digests(ROSTER_ROWS, (tests, vacc), given)
    who = (tests if drop == "tests" else vacc)["resident_id"][0]
    fewer = (tests.filter(pl.int_range(pl.len()) != 0), vacc) if drop == "tests" else (
        tests, vacc.filter(pl.int_range(pl.len()) != 0))
    after = _digests(ROSTER_ROWS, fewer, given)
    assert before.join(after, on=["resident_id", "digest"], how="anti")["resident_id"].to_list() == [who]
