"""Call outcomes the grid workers wrote on their sheets, and what the next refresh does with them.

A list that ignores what the workers already did is a list nobody trusts. Each returned row is one call
attempt, keyed by resident and reason (not by row position: sheets get re-sorted and edited). The rules:
外出不在本地 takes the resident out of scope for this round (counted apart); 已在外地检测 puts them on the
verify list until a matching record arrives; 号码错误 sends them to a home visit and onto the roster
correction list; 拒绝, or 无法联系 too many times, escalates to the community.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.contract import (
    AWAY,
    CALL_LIST,
    NOTE_HEADER,
    OUTCOME_HEADER,
    REASON_ZH,
    REFUSED,
    UNREACHABLE,
    WRONG_NUMBER,
)

ATTEMPT_COLUMNS = ["resident_id", "reason", "outcome", "note", "grid_worker", "source"]
_ZH = {c.name: c.zh for c in CALL_LIST.columns}
_REASON_FROM_ZH = {v: k for k, v in REASON_ZH.items()}


@dataclass(frozen=True)
class EscalationSettings:
    untested_refreshes: int = 3  # still untested after this many refreshes of the round
    unreachable_attempts: int = 3  # 无法联系 this many times


def attempts_from_sheet(sheet: pl.DataFrame, *, sheet_name: str, grid_worker: str, source: str) -> pl.DataFrame:
    """One row per filled-in 联系结果 on a returned sheet. The reason comes from the 原因 column where the
    sheet has one, else from the sheet (the phone and home-visit sheets are about testing)."""
    rid = _ZH["resident_id"]
    empty = pl.DataFrame(schema={c: pl.String for c in ATTEMPT_COLUMNS})
    if rid not in sheet.columns or OUTCOME_HEADER not in sheet.columns:
        return empty
    reason = (pl.col("原因").replace(_REASON_FROM_ZH) if "原因" in sheet.columns else pl.lit("untested"))
    note = pl.col(NOTE_HEADER).cast(pl.String) if NOTE_HEADER in sheet.columns else pl.lit(None, pl.String)
    out = sheet.select(
        pl.col(rid).cast(pl.String).str.strip_chars().alias("resident_id"),
        reason.cast(pl.String).alias("reason"),
        pl.col(OUTCOME_HEADER).cast(pl.String).str.strip_chars().alias("outcome"),
        note.str.strip_chars().alias("note"),
        pl.lit(grid_worker).alias("grid_worker"),
        pl.lit(f"{source}#{sheet_name}").alias("source"),
    ).filter(pl.col("resident_id").is_not_null() & (pl.col("resident_id") != "")
             & pl.col("outcome").is_not_null() & (pl.col("outcome") != ""))
    return out.select(ATTEMPT_COLUMNS)


def no_outcomes() -> pl.DataFrame:
    """outcome_summary before any call is made (a first refresh, a new round)."""
    return outcome_summary(pl.DataFrame(schema={"resident_id": pl.String, "reason": pl.String,
                                                "outcome": pl.String, "recorded_at": pl.Datetime("us")}))


def outcome_summary(attempts: pl.DataFrame) -> pl.DataFrame:
    """Per resident, over the round's attempts (resident_id, reason, outcome, recorded_at): the latest
    testing outcome, how many calls, how many unreachable, whether they refused or the number is wrong."""
    testing = attempts.filter(pl.col("reason") == "untested").sort("recorded_at")
    return testing.group_by("resident_id").agg(
        pl.len().alias("call_attempts"),
        pl.col("outcome").last().alias("last_outcome"),
        pl.col("recorded_at").last().alias("last_attempt_at"),
        (pl.col("outcome") == UNREACHABLE).sum().alias("unreachable_attempts"),
        (pl.col("outcome") == REFUSED).any().alias("refused"),
        (pl.col("outcome") == WRONG_NUMBER).any().alias("wrong_number"),
    )


def apply_outcomes(status: pl.DataFrame, summary: pl.DataFrame) -> pl.DataFrame:
    """Adds the outcome facts to each resident's status. A resident reported away leaves the testing
    round's scope (they are counted as away_reported); nothing else changes whether someone is tested."""
    s = status.join(summary, on="resident_id", how="left").with_columns(
        pl.col("call_attempts").fill_null(0),
        pl.col("unreachable_attempts").fill_null(0),
        pl.col("refused").fill_null(False),
        pl.col("wrong_number").fill_null(False),
    )
    away = ((pl.col("last_outcome") == AWAY) & pl.col("in_scope") & ~pl.col("tested_in_round")).fill_null(False)
    return s.with_columns(
        away.alias("away_reported"),
        (pl.col("in_scope") & ~away).alias("in_scope_testing"),
    )

