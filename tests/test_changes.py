"""What changed since the last refresh: the rows new on the list are marked, the list keeps its order, and
those who came off are counted by why; who has waited too long, said the same way each refresh."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from transforms.changes import EARLIER, escalation_rows, mark_changes
from transforms.outcomes import EscalationSettings


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

    # Told which residents' rows may differ (those ruled again), it compares theirs alone and finds the same.
    same = pl.DataFrame({"resident_id": ["R2"], "reason": ["untested"], "list": ["call"]})
    call_more = pl.concat([call_list.head(2), same.with_columns(pl.lit("").alias("new_since_last")),
                           call_list.tail(3)])
    whole = mark_changes(call_more, pl.concat([previous, same]), status)
    among = mark_changes(call_more, pl.concat([previous, same]), status,
                         among=pl.DataFrame({"resident_id": ["R5", "R9", "R1", "R3", "R7", "R8", "R6", "R4"]}))
    assert whole[0].equals(among[0]) and whole[1] == among[1]
    assert whole[1]["remaining"] == 3 and whole[0]["new_since_last"].to_list() == ["是", "", "", "", "是", "是"]


def _escalated(earlier_refreshes: int, since: datetime | None) -> dict[str, str]:
    status = pl.DataFrame({
        "resident_id": ["R1", "R2"], "street": "粤海街道", "community": "海珠社区", "grid_id": "G1",
        "grid_worker": "王芳", "name": ["张三", "李四"], "phone": "13800138000", "address": "1栋101",
        "tags": ["卧床", None], "refused": [False, True], "unreachable_attempts": [0, 0], "call_attempts": [0, 1],
        "last_outcome": [None, "拒绝"],
    }, schema_overrides={"last_outcome": pl.String, "tags": pl.String})
    call_list = pl.DataFrame({"resident_id": ["R1", "R2"], "reason": "untested"})
    earlier = pl.DataFrame({"resident_id": ["R1"], "earlier_untested_refreshes": [earlier_refreshes],
                            "untested_since": [since]}, schema=EARLIER.schema)
    rows = escalation_rows(status, call_list, earlier, EscalationSettings(untested_refreshes=3))
    return dict(zip(rows["resident_id"], rows["why"], strict=True))


def test_the_escalation_reason_names_when_first_listed_and_stays_the_same_refresh_after_refresh():
    """A reason that counted the refreshes changed every community's book every two hours."""
    first = datetime(2022, 5, 19, 8, 30)
    assert _escalated(1, first) == {"R2": "拒绝检测"}  # two refreshes so far: under the threshold
    third = _escalated(2, first)
    assert third == {"R1": "05-19 08:30起未检测（已达3次刷新）", "R2": "拒绝检测"}
    assert _escalated(7, first) == third
    assert _escalated(2, None)["R1"] == "本次刷新起未检测（已达3次刷新）"
