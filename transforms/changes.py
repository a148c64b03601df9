"""What changed since the last refresh, and who has waited too long: the escalation list.

Workers see who is new on their list; leaders see how many came off it (tested, vaccinated, reported
away) and how many have stayed. Residents who stay untested refresh after refresh, refuse, or cannot be
reached go to the community secretary, the bedridden and disabled first.
"""

from __future__ import annotations

import polars as pl

from transforms.contract import ESCALATION
from transforms.outcomes import EscalationSettings

# Per resident, the earlier refreshes of the round that listed them untested, and when the first was.
EARLIER = pl.DataFrame(schema={"resident_id": pl.String, "earlier_untested_refreshes": pl.UInt32,
                               "untested_since": pl.Datetime("us")})
# What escalation_rows reads of a resident's status.
ESCALATION_INPUTS = [c for c in ESCALATION.names if c not in ("priority", "why")] + ["refused", "unreachable_attempts"]
PRIORITY = (("卧床", "一级（卧床）"), ("残疾", "二级（残疾）"), ("高龄", "三级（高龄）"))
OTHER_PRIORITY = "四级"


def mark_changes(call_list: pl.DataFrame, previous: pl.DataFrame | None, status: pl.DataFrame,
                 among: pl.DataFrame | None = None) -> tuple[pl.DataFrame, dict[str, int | bool]]:
    """previous: resident_id, reason, list of the last refresh's call list (None on the first run).
    among: resident_id of the only residents whose rows may differ between the two lists (those ruled again,
    transforms.rule_parts); the two lists are compared on their rows alone (at 20M, 9.5 M rows each)."""
    keys = ["resident_id", "reason"]
    if previous is None:
        return call_list.with_columns(pl.lit("").alias("new_since_last")), {
            "first_run": True, "on_list": call_list.height, "new": call_list.height, "remaining": 0,
            "came_off": 0, "came_off_tested": 0, "came_off_vaccinated": 0, "came_off_away": 0, "came_off_other": 0,
        }
    prev, now = previous.select(keys), call_list.select(keys)
    if among is not None:
        prev, now = (frame.join(among.select("resident_id"), on="resident_id", how="semi") for frame in (prev, now))
    # A list holds a resident once for each reason; the last one is read back as it was stored.
    prev, now = prev.unique(), now.unique()
    new = now.join(prev, on=keys, how="anti")
    # The mark is found on the keys alone and set beside the list: joining the list itself copied all its
    # columns (9.5 M rows at 20M residents) and left its order to the join.
    mark = call_list.select(keys).join(new.with_columns(pl.lit("是").alias("_new")), on=keys, how="left",
                                       maintain_order="left")["_new"].fill_null("")
    marked = call_list.with_columns(mark.alias("new_since_last"))
    gone = prev.join(now, on=keys, how="anti").join(
        status.select("resident_id", "tested_in_round", "away_reported", "vaccination_reason"),
        on="resident_id", how="left")
    testing = gone.filter(pl.col("reason") == "untested")
    vacc = gone.filter(pl.col("reason") != "untested")
    tested = testing.filter(pl.col("tested_in_round").fill_null(False)).height
    away = testing.filter(pl.col("away_reported").fill_null(False)).height
    vaccinated = vacc.filter(pl.col("tested_in_round").is_not_null() & pl.col("vaccination_reason").is_null()).height
    return marked.select(call_list.columns), {
        "first_run": False, "on_list": call_list.height, "new": new.height,
        "remaining": call_list.height - new.height, "came_off": gone.height,
        "came_off_tested": tested, "came_off_vaccinated": vaccinated, "came_off_away": away,
        "came_off_other": gone.height - tested - vaccinated - away,
    }


def escalation_rows(status: pl.DataFrame, call_list: pl.DataFrame, earlier: pl.DataFrame,
                    settings: EscalationSettings) -> pl.DataFrame:
    """The escalated residents of one status (the city's, or a part's), unordered, with their priority rank.
    earlier: EARLIER. The reason names when the resident was first listed and the threshold they reached,
    not the count so far: a count that moved every refresh changed every community's book every two hours
    (at 20M residents, eleven thousand workbooks written again for nothing else)."""
    c = pl.col
    untested = call_list.filter(c("reason") == "untested").select("resident_id").unique()
    s = status.join(untested, on="resident_id", how="semi").join(earlier, on="resident_id", how="left").with_columns(
        (c("earlier_untested_refreshes").fill_null(0) + 1).alias("refreshes"))
    why = pl.concat_str([
        pl.when(c("refreshes") >= settings.untested_refreshes).then(pl.format(
            "{}起未检测（已达{}次刷新）",
            c("untested_since").dt.strftime("%m-%d %H:%M").fill_null("本次刷新"), pl.lit(settings.untested_refreshes))),
        pl.when(c("refused")).then(pl.lit("拒绝检测")),
        pl.when(c("unreachable_attempts") >= settings.unreachable_attempts)
        .then(pl.format("{}次无法联系", c("unreachable_attempts"))),
    ], separator="；", ignore_nulls=True)
    tags = c("tags").fill_null("")
    rank = pl.lit(len(PRIORITY))
    label = pl.lit(OTHER_PRIORITY)
    for i, (tag, text) in reversed(list(enumerate(PRIORITY))):
        rank = pl.when(tags.str.contains(tag, literal=True)).then(pl.lit(i)).otherwise(rank)
        label = pl.when(tags.str.contains(tag, literal=True)).then(pl.lit(text)).otherwise(label)
    out = s.with_columns(why.alias("why"), rank.alias("_rank"), label.alias("priority")).filter(
        c("why").is_not_null() & (c("why") != ""))
    return out.with_columns(c("call_attempts").cast(pl.String), c("last_outcome").fill_null("")).select(
        "_rank", *ESCALATION.names)


def order_escalation(rows: pl.DataFrame) -> pl.DataFrame:
    """The escalation list from escalation_rows (one status's, or the parts' put together): the bedridden
    first, then by place. One row per resident, so the order is the same however the rows were gathered."""
    return rows.sort(["_rank", "street", "community", "grid_id", "address", "resident_id"]).select(ESCALATION.names)
