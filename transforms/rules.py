"""The campaign's rules: who is untested this round, who is due a vaccine dose, and on which list.

Only 'match' links count as evidence. A 'possible' link never marks anyone tested; it moves the
resident from the call list to the verify list, with the candidate record shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from transforms.contract import (
    CALL_LIST,
    CONTRAINDICATION_TAG,
    HOME_VISIT_TAGS,
    STATUS_IN_PLACE,
    TESTED_ELSEWHERE,
    VACCINES,
)
from transforms.idcard import mask_id
from transforms.outcomes import apply_outcomes, no_outcomes

DEFAULT_SERIES = VACCINES["北京生物"]  # an unknown product is treated as the common two-dose inactivated series


@dataclass(frozen=True)
class RuleSettings:
    min_vaccination_age: int = 3
    booster_min_age: int = 18
    booster_after_days: int = 180


@dataclass(frozen=True)
class Round:
    since: datetime
    as_of: datetime


def _age_at(birth: pl.Expr, as_of: datetime) -> pl.Expr:
    before_birthday = (birth.dt.month() > as_of.month) | (
        (birth.dt.month() == as_of.month) & (birth.dt.day() > as_of.day)
    )
    return pl.lit(as_of.year) - birth.dt.year() - before_birthday.cast(pl.Int32)


def _fmt(ts: pl.Expr) -> pl.Expr:
    return ts.dt.strftime("%Y-%m-%d %H:%M")


def test_status(residents: pl.DataFrame, test_links: pl.DataFrame, rnd: Round) -> pl.DataFrame:
    """Per resident, in residents' order: tested_in_round, last_test_at, and the best 'possible' test in the round.

    test_links: resident_id, decision, sampled_at, candidate (text shown on the verify list).
    """
    upto = test_links.filter(pl.col("sampled_at") <= rnd.as_of)
    matched = upto.filter(pl.col("decision") == "match").group_by("resident_id").agg(
        pl.col("sampled_at").max().alias("last_test_at"),
        (pl.col("sampled_at") >= rnd.since).any().alias("tested_in_round"),
    )
    possible = (
        upto.filter((pl.col("decision") == "possible") & (pl.col("sampled_at") >= rnd.since))
        # The best-scoring candidate; on a tie the latest, then the lowest record number: never row order.
        .sort(["score", "sampled_at", "record_id"], descending=[True, True, False])
        .group_by("resident_id", maintain_order=True)
        .agg(pl.col("candidate").first().alias("test_candidate"),
             ("test:" + pl.col("record_id").first()).alias("test_candidate_record"))
    )
    return (
        residents.select("resident_id")
        .join(matched, on="resident_id", how="left", maintain_order="left")
        .join(possible, on="resident_id", how="left", maintain_order="left")
        .with_columns(pl.col("tested_in_round").fill_null(False))
    )


def vaccination_status(
    residents: pl.DataFrame, vacc_links: pl.DataFrame, rnd: Round, settings: RuleSettings
) -> pl.DataFrame:
    """Per resident, in residents' order: doses (distinct days), series product, last dose, the vaccination reason."""
    as_of_date = rnd.as_of.date()
    # Grouped, never sorted whole: a city's matched doses are tens of millions of rows, and sorting them by
    # resident held 2.5 GiB more at 5M residents. A day's product is the first named in text order; the
    # series is the product of the earliest day that names one.
    per_resident = (
        vacc_links.lazy()
        .filter((pl.col("decision") == "match") & (pl.col("vaccinated_at") <= rnd.as_of))
        .group_by("resident_id", pl.col("vaccinated_at").dt.date().alias("day"))
        .agg(pl.col("vaccine").drop_nulls().min())
        .group_by("resident_id")
        .agg(
            pl.len().alias("doses"),
            pl.col("vaccine").sort_by("day").drop_nulls().first().alias("series_vaccine"),
            pl.col("day").max().alias("last_dose_on"),
        )
        .collect()
    )
    series = pl.DataFrame(
        {
            "series_vaccine": list(VACCINES),
            "series_doses": [s.doses for s in VACCINES.values()],
            "series_interval": [s.interval_days for s in VACCINES.values()],
        }
    )
    possible = (
        vacc_links.filter((pl.col("decision") == "possible") & (pl.col("vaccinated_at") <= rnd.as_of))
        .sort(["score", "vaccinated_at", "record_id"], descending=[True, True, False])
        .group_by("resident_id", maintain_order=True)
        .agg(pl.col("candidate").first().alias("vaccination_candidate"),
             ("vaccination:" + pl.col("record_id").first()).alias("vaccination_candidate_record"))
    )
    v = (
        residents.select("resident_id", "birth", "tags", "in_scope")
        .join(per_resident, on="resident_id", how="left", maintain_order="left")
        .join(series, on="series_vaccine", how="left", maintain_order="left")
        .join(possible, on="resident_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("doses").fill_null(0),
            pl.col("series_doses").fill_null(DEFAULT_SERIES.doses),
            pl.col("series_interval").fill_null(DEFAULT_SERIES.interval_days),
            _age_at(pl.col("birth"), rnd.as_of).alias("age"),
        )
    )
    c = pl.col
    adult_or_unknown = c("age").is_null() | (c("age") >= settings.booster_min_age)
    eligible = (
        c("in_scope")
        & (c("age").is_null() | (c("age") >= settings.min_vaccination_age))
        & ~c("tags").fill_null("").str.contains(CONTRAINDICATION_TAG, literal=True)
    )
    # What the reason reads more than once is a column first: an eager expression shares no subexpression.
    v = v.with_columns(eligible.alias("vaccination_eligible"),
                       (pl.lit(as_of_date) - c("last_dose_on")).dt.total_days().alias("_since_last"))
    eligible, since_last = c("vaccination_eligible"), c("_since_last")
    reason = (
        pl.when(~eligible).then(None)
        .when(c("doses") == 0).then(pl.lit("unvaccinated"))
        .when((c("doses") < c("series_doses")) & (since_last >= c("series_interval"))).then(pl.lit("dose_due"))
        .when(
            (c("doses") == c("series_doses")) & adult_or_unknown & (since_last >= settings.booster_after_days)
        ).then(pl.lit("booster_due"))
        .otherwise(None)
    )
    return v.with_columns(reason.alias("vaccination_reason")).drop("_since_last")


def resident_status(
    residents: pl.DataFrame,
    test_links: pl.DataFrame,
    vacc_links: pl.DataFrame,
    rnd: Round,
    settings: RuleSettings,
    outcomes: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per roster resident with every fact the lists and coverage are built from.

    outcomes: the workers' call outcomes summarised per resident (transforms.outcomes.outcome_summary)."""
    base = residents.with_columns(
        (pl.col("status").fill_null(STATUS_IN_PLACE) == STATUS_IN_PLACE).alias("in_scope"),
        pl.col("tags").fill_null("").str.contains("|".join(HOME_VISIT_TAGS)).alias("home_visit"),
    )
    # Both are one row per resident in the roster's order, so they are set beside it rather than joined:
    # joining copied the status's sixty columns twice (0.4 s for each million residents).
    tests = test_status(base, test_links, rnd).drop("resident_id")
    vacc = vaccination_status(base, vacc_links, rnd, settings).drop("resident_id", "birth", "tags", "in_scope")
    status = base.hstack(tests.get_columns() + vacc.get_columns())
    if outcomes is None:
        outcomes = no_outcomes()
    return apply_outcomes(status, outcomes)


def build_call_list(status: pl.DataFrame, keep: tuple[str, ...] = ()) -> pl.DataFrame:
    """One row per in-scope resident per reason, in the CALL_LIST contract's columns (and the status's
    columns named in keep)."""
    c = pl.col
    # Lazy, so the filters and the concat carry only the columns the list reads, not the status's sixty:
    # at 5M residents the eager version held 3 GiB more for its 2.4M rows.
    inscope = status.lazy().filter(c("in_scope"))
    elsewhere = c("last_outcome") == TESTED_ELSEWHERE
    base_detail = (
        pl.when(c("test_candidate").is_not_null())
        .then(pl.lit("疑似本人检测记录：") + c("test_candidate"))
        .when(elsewhere).then(pl.lit("网格员反馈已在外地检测，待检测记录到达后核实"))
        .when(c("wrong_number")).then(pl.lit("登记电话号码错误，需上门并更正登记"))
        .when(c("last_test_at").is_not_null())
        .then(pl.lit("本轮未检测；最近一次检测：") + _fmt(c("last_test_at")))
        .otherwise(pl.lit("本轮未检测；无检测记录"))
    )
    calls_so_far = pl.when(c("call_attempts") > 0).then(
        pl.format("；已联系{}次（最近：{}）", c("call_attempts"), c("last_outcome"))).otherwise(pl.lit(""))
    untested = inscope.filter(c("in_scope_testing") & ~c("tested_in_round")).with_columns(
        pl.lit("untested").alias("reason"),
        pl.when(c("test_candidate").is_not_null() | elsewhere).then(pl.lit("verify"))
        .when(c("home_visit") | c("wrong_number")).then(pl.lit("home_visit"))
        .otherwise(pl.lit("call")).alias("list"),
        (base_detail + calls_so_far).alias("detail"),
        c("test_candidate_record").alias("candidate_record"),
    )
    vdetail = {
        "unvaccinated": pl.lit("无接种记录"),
        "dose_due": pl.format(
            "已接种{}剂（{}），末剂{}，应接种第{}剂", c("doses"), c("series_vaccine").fill_null("厂家不详"),
            c("last_dose_on").dt.strftime("%Y-%m-%d"), c("doses") + 1,
        ),
        "booster_due": pl.format(
            "已完成{}剂（{}），末剂{}，可接种加强针", c("doses"), c("series_vaccine").fill_null("厂家不详"),
            c("last_dose_on").dt.strftime("%Y-%m-%d"),
        ),
    }
    detail = pl.when(pl.lit(False)).then(pl.lit(""))
    for reason, text in vdetail.items():
        detail = detail.when(c("vaccination_reason") == reason).then(text)
    vacc = inscope.filter(c("vaccination_reason").is_not_null()).with_columns(
        c("vaccination_reason").alias("reason"),
        pl.when(c("vaccination_candidate").is_not_null()).then(pl.lit("verify")).otherwise(pl.lit("call")).alias("list"),
        pl.when(c("vaccination_candidate").is_not_null())
        .then(detail.otherwise(pl.lit("")) + pl.lit("；疑似本人接种记录：") + c("vaccination_candidate"))
        .otherwise(detail.otherwise(pl.lit("")))
        .alias("detail"),
        c("vaccination_candidate_record").alias("candidate_record"),
    )
    both = pl.concat([untested, vacc], how="diagonal_relaxed")
    return both.with_columns(mask_id("id_clean").alias("id_masked"), pl.lit("").alias("new_since_last")).select(
        *CALL_LIST.names, *keep).collect()
