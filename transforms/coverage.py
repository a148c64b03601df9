"""Coverage per grid, with community, street and total roll-ups, for the leaders who watch it."""

from __future__ import annotations

import polars as pl

from transforms.contract import STATUSES

GRID = ["street", "community", "grid_id"]
LEVELS = (("grid", GRID), ("community", ["street", "community"]), ("street", ["street"]))


def _flags() -> list[pl.Expr]:
    """Each resident's part in each count but the residents themselves: one boolean a measure."""
    c = pl.col
    out = [
        # In scope for testing: living here, and not reported away by the grid worker this round.
        c("in_scope_testing").alias("in_scope"),
        (c("in_scope_testing") & c("tested_in_round")).alias("tested"),
        (c("in_scope_testing") & ~c("tested_in_round")).alias("untested"),
        (c("in_scope_testing") & ~c("tested_in_round") & c("test_candidate").is_not_null()).alias("untested_verify"),
        c("away_reported"),
    ]
    out += [(c("status").fill_null(STATUSES[0]) == s).alias(f"status_{s}") for s in STATUSES[1:]]
    out += [
        c("vaccination_eligible"),
        (c("vaccination_eligible") & (c("doses") >= 1)).alias("vaccinated_1plus"),
        (c("vaccination_eligible") & (c("doses") >= c("series_doses"))).alias("series_complete"),
        (c("vaccination_reason") == "unvaccinated").fill_null(False).alias("unvaccinated"),
        (c("vaccination_reason") == "dose_due").fill_null(False).alias("dose_due"),
        (c("vaccination_reason") == "booster_due").fill_null(False).alias("booster_due"),
    ]
    return out


def resident_measures(status: pl.DataFrame) -> pl.DataFrame:
    """One row of booleans per resident, in the status's order: what each adds to its grid's counts. Kept
    between refreshes (transforms.rule_parts), a grid's counts can be corrected for the few residents ruled
    again without the rest of the city's status."""
    return status.select(_flags())


def measures_by_grid(places: pl.DataFrame, measures: pl.DataFrame) -> pl.DataFrame:
    """Each grid's counts from residents' places (GRID columns) and their resident_measures, row for row."""
    sums = [pl.col(m).sum() for m in measures.columns]
    return places.select(GRID).hstack(measures).group_by(GRID).agg(pl.len().alias("residents"), *sums)


def grid_measures(status: pl.DataFrame) -> pl.DataFrame:
    """Each grid's counts. Every measure is a count, so the grids of a city's parts (transforms.rule_parts)
    add up to what the whole city's status gives."""
    return measures_by_grid(status, resident_measures(status))


def grid_totals(grids: pl.DataFrame) -> pl.DataFrame:
    """One row per grid from grid_measures rows that may name a grid more than once (several parts', or
    counts taken off and put back), each measure in the type of grids'."""
    return grids.group_by(GRID).agg(pl.col(m).sum().cast(grids.schema[m]) for m in grids.columns if m not in GRID)


def roll_up(grids: pl.DataFrame) -> pl.DataFrame:
    """One row per grid, community, street and the whole run from grid_measures (of one status, or of several
    parts of the roster: a grid split between two parts is added up here); rates are 0-1, blank when nobody
    is in scope."""
    grids = grid_totals(grids)
    sums = [pl.col(m).sum().cast(grids.schema[m]) for m in grids.columns if m not in GRID]
    frames = [grids.with_columns(pl.lit("grid").alias("level"))]
    for level, keys in LEVELS[1:]:
        frames.append(grids.group_by(keys).agg(sums).with_columns(pl.lit(level).alias("level")))
    frames.append(grids.select(sums).with_columns(pl.lit("total").alias("level")))
    cov = pl.concat(frames, how="diagonal_relaxed")
    c = pl.col
    rate = lambda num, den: pl.when(c(den) > 0).then((c(num) / c(den)).round(4)).otherwise(None)  # noqa: E731
    cov = cov.with_columns(
        rate("tested", "in_scope").alias("coverage_rate"),
        rate("vaccinated_1plus", "vaccination_eligible").alias("vaccination_rate"),
    )
    order = pl.col("level").replace_strict({"grid": 0, "community": 1, "street": 2, "total": 3}, return_dtype=pl.Int8)
    first = ["level", "street", "community", "grid_id"]
    return cov.sort([c("street"), c("community"), order, c("grid_id")], nulls_last=True).select(
        first + [x for x in cov.columns if x not in first]
    )


def build_coverage(status: pl.DataFrame) -> pl.DataFrame:
    return roll_up(grid_measures(status))
