"""When the last refresh's rulings may be used (flows.kept_rules), and the outcomes that make a resident ruled again."""

from __future__ import annotations

import os
from datetime import datetime

import polars as pl

from flows.kept_rules import KeptRules, changed_outcomes, rules_key
from transforms.outcomes import EscalationSettings, outcome_summary
from transforms.rule_parts import RosterRules, RuleInputs
from transforms.rules import Round, RuleSettings


def _parts(folder, name, n):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{name}-{i}.parquet"
        pl.DataFrame({"record_id": [f"{name}{i}"]}).write_parquet(path)
        paths.append(path)
    return paths


def _given(as_of="2022-05-20 18:00"):
    return RuleInputs(round=Round(since=datetime(2022, 5, 20), as_of=datetime.fromisoformat(as_of)),
                      rules=RuleSettings(), escalation=EscalationSettings())


def _rules():
    frame = pl.DataFrame({"x": [1, 2]})
    return RosterRules(call_list=frame, measures=frame, grids=frame, escalation_inputs=frame, wrong_numbers=frame)


def test_kept_rulings_hold_only_for_the_last_run_the_same_inputs_and_records_ruled_before(tmp_path):
    roster = _parts(tmp_path / "spill", "roster", 2)
    tests = _parts(tmp_path / "spill", "tests", 2)
    key = rules_key(roster, _given())
    outcomes = pl.DataFrame({"resident_id": ["R1"]})
    assert KeptRules(tmp_path / "kept", key, {"tests": tests}).why_not("run1", "links-a") == "none kept"
    KeptRules(tmp_path / "kept", key, {"tests": tests}).save("run1", "links-b", _rules(), outcomes)

    grown = tests + _parts(tmp_path / "spill2", "tests", 1)  # the same parts and one more: records added
    kept = KeptRules(tmp_path / "kept", key, {"tests": grown})
    assert kept.why_not("run1", "links-b") is None
    loaded = kept.load()
    assert loaded.rules.call_list.equals(_rules().call_list) and loaded.outcomes.equals(outcomes)
    assert kept.why_not("run2", "links-b") == "not made by the last refresh recorded"
    assert kept.why_not(None, "links-b") == "not made by the last refresh recorded"
    assert kept.why_not("run1", "links-c") == "the decisions were not merged from the copy they were ruled with"
    assert kept.why_not("run1", None) == "the decisions were not merged from the copy they were ruled with"

    # A source read again is written to new files, even with the same bytes.
    again = _parts(tmp_path / "reread", "tests", 2)
    assert KeptRules(tmp_path / "kept", key, {"tests": again}).why_not("run1", "links-b") == (
        "records ruled before were read again")
    assert KeptRules(tmp_path / "kept", key, {"tests": tests[:1]}).why_not("run1", "links-b") == (
        "records ruled before were read again")
    assert KeptRules(tmp_path / "kept", key, {"tests": tests, "vaccinations": tests}).why_not(
        "run1", "links-b") == "records ruled before were read again"

    other = "another roster, round, rule settings or rules code"
    assert KeptRules(tmp_path / "kept", rules_key(roster, _given("2022-05-20 20:00")), {"tests": tests}).why_not(
        "run1", "links-b") == other
    os.utime(roster[0], ns=(1, 1))  # the roster file touched: another file as far as the key knows
    assert KeptRules(tmp_path / "kept", rules_key(roster, _given()), {"tests": tests}).why_not(
        "run1", "links-b") == other

    # A set half written (a refresh killed while keeping it) is not taken.
    here = next((tmp_path / "kept").glob("rules-*"))
    (here / "measures.parquet").unlink()
    assert kept.why_not("run1", "links-b") == "the kept files are incomplete"
    # A new set replaces it whole.
    kept.save("run2", "links-c", _rules(), outcomes)
    assert kept.why_not("run2", "links-c") is None and len(list((tmp_path / "kept").glob("rules-*"))) == 1


def test_a_failed_refreshs_rulings_hold_after_the_last_recorded_with_whom_it_ruled_since(tmp_path):
    """A refresh that ruled and then failed (its record never made) keeps its rulings with the last refresh
    recorded and whom it ruled since (None: everyone): the next refresh may take them, ruling those again
    too; not after another refresh was recorded."""
    roster = _parts(tmp_path / "spill", "roster", 1)
    tests = _parts(tmp_path / "spill", "tests", 1)
    kept = KeptRules(tmp_path / "kept", rules_key(roster, _given()), {"tests": tests})
    outcomes = pl.DataFrame({"resident_id": ["R1"]})
    kept.save("failed", "links-f", _rules(), outcomes, base_run="run1",
              since=pl.DataFrame({"resident_id": ["R7", "R9"]}))
    assert kept.why_not("run1", "links-f") is None  # run1 the last recorded: the failed run's rulings hold
    loaded = kept.load()
    assert loaded.run_id == "failed" and loaded.since["resident_id"].to_list() == ["R7", "R9"]
    assert kept.why_not("failed", "links-f") is None  # had it been recorded after all
    assert kept.why_not("run2", "links-f") == "not made by the last refresh recorded"
    assert kept.why_not("run1", "links-g") == "the decisions were not merged from the copy they were ruled with"
    here = next((tmp_path / "kept").glob("rules-*"))
    (here / "since.parquet").unlink()
    assert kept.why_not("run1", "links-f") == "the kept files are incomplete"
    kept.save("failed", "links-f", _rules(), outcomes, base_run="run1", since=None)  # it ruled everyone
    assert kept.why_not("run1", "links-f") is None and kept.load().since is None
    assert kept.why_not("run2", "links-f") == "not made by the last refresh recorded"


def test_rulings_from_an_earlier_copy_hold_with_whom_each_refresh_since_changed(tmp_path):
    """Rulings made from a copy of the decisions a few refreshes back (those since died before they ruled)
    hold while that copy is among the earlier ones the last copy was carried on from: behind() gives the files
    of whom each refresh since changed, newest first, up to that copy."""
    roster = _parts(tmp_path / "spill", "roster", 1)
    tests = _parts(tmp_path / "spill", "tests", 1)
    kept = KeptRules(tmp_path / "kept", rules_key(roster, _given()), {"tests": tests})
    kept.save("run1", "links-a", _rules(), pl.DataFrame({"resident_id": ["R1"]}))
    earlier = [("links-c", tmp_path / "t3.parquet"), ("links-b", tmp_path / "t2.parquet"),
               ("links-a", tmp_path / "t1.parquet")]
    assert kept.why_not("run1", "links-a", earlier) is None and kept.behind("links-a", earlier) == []
    assert kept.why_not("run1", "links-d", earlier) is None
    assert kept.behind("links-d", earlier) == [tmp_path / "t3.parquet", tmp_path / "t2.parquet", tmp_path / "t1.parquet"]
    assert kept.behind("links-d", earlier[:2]) is None
    assert kept.why_not("run1", "links-d", earlier[:2]) == (
        "the decisions were not merged from the copy they were ruled with")
    assert kept.why_not("run1", None, earlier) == "the decisions were not merged from the copy they were ruled with"
    assert kept.why_not("run2", "links-d", earlier) == "not made by the last refresh recorded"


def test_changed_outcomes_names_residents_with_a_new_gone_or_different_summary():
    at = datetime(2022, 5, 20, 12)

    def summary(rows):
        return outcome_summary(pl.DataFrame(rows, schema={"resident_id": pl.String, "reason": pl.String,
                                                          "outcome": pl.String, "recorded_at": pl.Datetime("us")},
                                            orient="row"))

    before = summary([("R1", "untested", "无法联系", at), ("R2", "untested", "拒绝", at),
                      ("R3", "untested", "无法联系", at), ("R5", "untested", None, at)])
    now = summary([("R1", "untested", "无法联系", at), ("R2", "untested", "拒绝", at),
                   ("R3", "untested", "无法联系", at), ("R3", "untested", "无法联系", at.replace(hour=13)),
                   ("R4", "untested", "外出不在本地", at), ("R5", "untested", None, at)])
    assert sorted(changed_outcomes(before, now)["resident_id"].to_list()) == ["R3", "R4"]
    assert sorted(changed_outcomes(now, before)["resident_id"].to_list()) == ["R3", "R4"]
    assert changed_outcomes(now, now).height == 0  # nulls compare equal: R5 is unchanged
