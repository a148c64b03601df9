"""What changed since the last refresh: the rows new on the list are marked, the list keeps its order, and
those who came off are counted by why."""

from __future__ import annotations

import polars as pl

from transforms.changes import mark_changes


def test_new_rows_are_marked_in_the_list_s_order_and_those_gone_are_counted_by_why():
    call_list = pl.DataFrame({
        "resident_id": ["R5", "R1", "R3", "R1", "R9"],
        "reason": ["untested", "untested", "untested", "dose_due", "untested"],
        "list": ["call", "home_visit", "call", "call", "verify"],
        "new_since_last": [""] * 5,
    })
    previous = pl.DataFrame({
        "resident_id": ["R1", "R1", "R3", "R3", "R7", "R8", "R6", "R4"],
        "reason": ["untested", "untested", "untested", "booster_due", "untested", "untested", "dose_due", "untested"],
        "list": ["call"] * 8,
    })
    status = pl.DataFrame({  # the came-off residents' status now
        "resident_id": ["R3", "R7", "R8", "R6", "R4"],
        "tested_in_round": [True, True, False, True, False],
        "away_reported": [False, False, True, False, False],
        "vaccination_reason": [None, None, None, None, None],
    }, schema_overrides={"vaccination_reason": pl.String})
    marked, figures = mark_changes(call_list, previous, status)
    assert marked.columns == call_list.columns
    assert marked.select("resident_id", "reason").equals(call_list.select("resident_id", "reason"))
    assert marked["new_since_last"].to_list() == ["是", "", "", "是", "是"]
    # gone: R3 booster_due (vaccinated now), R7 tested, R8 away, R6 dose_due (vaccinated), R4 still untested
    assert figures == {"first_run": False, "on_list": 5, "new": 3, "remaining": 2, "came_off": 5,
                       "came_off_tested": 1, "came_off_vaccinated": 2, "came_off_away": 1, "came_off_other": 1}
