"""The rules task: the whole roster's rulings, or only the residents whose inputs changed.

In a module of its own because the kept rulings (flows.kept_rules) are keyed by the code that makes them:
this module, what it imports of transforms, and the rules' own modules. When it lived in flows/refresh.py,
a change to any part of the flow (or to the books' or the report's transforms, which the flow imports)
made the next refresh rule every resident again: at 20M residents three minutes or more.
"""

from __future__ import annotations

import time
from dataclasses import replace

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.kept_rules import KeptRules, changed_outcomes
from flows.meter import time_since
from transforms.coverage import GRID
from transforms.evidence import test_evidence, vaccination_evidence
from transforms.rule_parts import (
    POS,
    Ruled,
    RuleInputs,
    came_off_of,
    finish,
    gather,
    numbered_by_part,
    of_part,
    part_numbers,
    rule_part,
    splice,
)

# Residents ruled at once: memory holds one part's status (sixty columns a resident), not a city's.
RULES_PART_ROWS = 1_000_000


def _tested_before_left_out(positions: pl.DataFrame, tests_added: pl.DataFrame | None, others: pl.DataFrame,
                            tested_in_round: pl.Series) -> tuple[pl.DataFrame, int]:
    """positions (resident_id, POS) less the residents whose only changes are new test decisions (tests_added,
    none of them in others: changed outcomes, or changed in another refresh) and who were tested this round
    by the kept rulings (tested_in_round, by POS), and how many those were. A test record added to such a
    resident, a match or a possible, changes nothing the rulings keep: tested_in_round stays true (it is an
    any() over the round's matches), so they are on no untested list, count as tested, are not away, and their
    latest test and candidate, which only an untested row shows, are shown nowhere; the vaccination rows read
    no test. At 20M, of the 0.94 M residents a two-hour batch touches, the 900,000 re-tests are mostly such."""
    if tests_added is None or not positions.height:
        return positions, 0
    only_tests = tests_added.join(others, on="resident_id", how="anti")["resident_id"]
    left_out = positions["resident_id"].is_in(only_tests.implode()) & tested_in_round.gather(positions[POS])
    return positions.filter(~left_out), int(left_out.sum())


@task(cache_policy=NO_CACHE)
def apply_rules(people: dict[str, pl.DataFrame | pl.LazyFrame], links: pl.DataFrame | pl.LazyFrame,
                given: RuleInputs, kept: KeptRules, lineage: dict, last_run: str | None, run_id: str,
                timings: dict[str, float] | None = None, figures: dict | None = None) -> Ruled:
    """The call list, coverage, escalation and wrong numbers of the whole roster, ruled RULES_PART_ROWS
    residents at a time (people["roster"] may be a scan of the roster on disk: one part of it is read at a
    time). When the last refresh's rulings are kept and hold (flows.kept_rules), only the residents whose
    decisions (lineage: from link) or call outcomes changed are ruled, and put in place of their old rows.
    timings: where the rules' steps' seconds are added (rules_kept, _evidence, _parts, _combine, and
    _combine's steps: _gather, _splice, _came_off, _finish);
    figures: where it says how many residents it ruled, and why all of them if it did."""
    timings = {} if timings is None else timings
    figures = {} if figures is None else figures
    roster = people["roster"].lazy()
    t = time.perf_counter()
    why = kept.why_not(last_run, lineage["from"], lineage["earlier"])  # "from" is None when touched is not known
    base = again = None
    behind = 0  # refreshes since the kept rulings' copy that died before they ruled
    tested_before = 0  # residents left as they were: only re-tested, and tested this round already
    every = positions = roster.select("resident_id").with_row_index(POS)  # whole: a slice would read from the start
    # Kept by a refresh that failed before it was recorded, which ruled everyone: anyone's row may differ from
    # the last recorded list's, so the lists are compared whole (as when everyone is ruled now).
    since_all = False
    if why is None:
        base = kept.load()
        others = [changed_outcomes(base.outcomes, given.outcomes)]
        between = kept.behind(lineage["from"], lineage["earlier"])
        others += [pl.read_parquet(touched) for touched in between]
        behind = len(between)
        if base.run_id != last_run:  # kept by a refresh that failed before it was recorded: whom it ruled too
            since_all = base.since is None
            if not since_all:
                others.append(base.since)
        others = pl.concat(others, how="vertical_relaxed").unique()
        changed = pl.concat([lineage["touched"], others], how="vertical_relaxed").unique()
        positions = positions.join(changed.lazy(), on="resident_id", how="semi").collect().sort(POS)
        positions, tested_before = _tested_before_left_out(positions, lineage.get("tests_added"), others,
                                                           base.rules.measures["tested_in_round"])
        again = positions.select("resident_id")
        # Their decisions taken out of the city's once, in memory (at 20M, 1.7 M of 68 M): as a plan, the tests'
        # evidence and the vaccinations' each read the whole copy again (7.1 -> 4.4 s measured apart; inside
        # the runs, this step and the evidence together did not come out faster).
        links = links.lazy().filter(pl.col("resident_id").is_in(again["resident_id"].implode())).collect()
    time_since(timings, "rules_kept", t)
    t = time.perf_counter()
    # The whole roster is ruled in parts of RULES_PART_ROWS roster positions; the residents ruled again, in
    # parts of RULES_PART_ROWS of them (at 20M, twenty parts of about 47,000 took 9.8 s, each paying a part's
    # fixed cost).
    numbers = part_numbers(positions, RULES_PART_ROWS, by_rank=again is not None)
    tests_ev = numbered_by_part(test_evidence(links, people["tests"]), numbers)
    vacc_ev = numbered_by_part(vaccination_evidence(links, people.get("vaccinations")), numbers)
    time_since(timings, "rules_evidence", t)  # found and numbered by part in one plan each
    t = time.perf_counter()
    residents = roster.select(pl.len()).collect().item()
    parts, wanted = [], None
    if again is not None:
        # Only the residents ruled again are read, by a filter in the scan: their rows alone of the other
        # columns are decoded (a two-hourly refresh at 20M rules about 5 % of the roster), each with its place.
        columns = roster.collect_schema().names()
        wanted = (roster.filter(pl.col("resident_id").is_in(again["resident_id"].implode())).collect()
                  .join(positions, on="resident_id", how="inner", validate="1:1").sort(POS).select(POS, *columns))
    for i, offset in enumerate(range(0, max(residents if wanted is None else wanted.height, 1), RULES_PART_ROWS)):
        if wanted is None:
            # Numbered once read: a scan numbered first is read from its start for every slice (20 s at 20M).
            chunk = roster.slice(offset, RULES_PART_ROWS).collect().with_row_index(POS, offset=offset)
        else:
            chunk = wanted.slice(offset, RULES_PART_ROWS)  # in POS order, as part_numbers ranked them
        parts.append(rule_part(chunk, of_part(tests_ev, i), of_part(vacc_ev, i),
                               given if base is None else replace(given, previous=None)))
    del tests_ev, vacc_ev
    time_since(timings, "rules_parts", t)
    t = combined = time.perf_counter()
    rules, came_off = gather(parts)
    del parts
    t = time_since(timings, "rules_gather", t)  # rules_combine's steps, each timed apart
    if base is not None:
        # Only the residents ruled again can have come off the last recorded refresh's list (given.previous:
        # the kept rulings' own, unless they are a failed refresh's, KeptRules.why_not), unless it ruled all.
        # Found before the splice, which empties the kept list.
        if given.previous is None:
            listed = base.rules.call_list.join(again, on="resident_id", how="semi")
        elif since_all:
            listed = given.previous.join(every.collect(), on="resident_id", how="inner")
        else:
            listed = given.previous.join(positions, on="resident_id", how="inner")
        t = time_since(timings, "rules_came_off", t)
        rules = splice(base.rules, wanted.select(POS, *GRID), rules)
        wanted = None  # their roster rows (916,417 at 20M) are not held through the rest of the rules
        del base
        t = time_since(timings, "rules_splice", t)
        came_off = came_off_of(listed, rules.measures)
        t = time_since(timings, "rules_came_off", t)
    ruled = finish(rules, came_off, given, None if since_all else again)
    time_since(timings, "rules_finish", t)
    time_since(timings, "rules_combine", combined)
    # Kept with whom they ruled since the last recorded refresh's rulings (None: everyone), for a refresh after
    # this one that fails before it is recorded; waited for before publishing.
    kept.save_aside(run_id, lineage["to"], rules, given.outcomes, last_run, None if since_all else again)
    figures |= {"residents": residents, "residents_ruled": residents if again is None else again.height,
                "tested_before_not_ruled": tested_before,
                "ruled_from_kept": why is None, "why_all": why, "kept_copies_behind": behind}
    return ruled
