"""transforms.rule_parts.splice on made-up rulings: the kept rulings with some residents ruled again are what
ruling everyone gives, row for row, and the kept lists are given up as they are merged."""

from __future__ import annotations

import numpy as np
import polars as pl

from transforms.coverage import GRID, measures_by_grid
from transforms.rule_parts import LIST_ORDER, POS, RosterRules, splice

FLAGS = ["in_scope", "untested", "away_reported"]


def city(n: int, seed: int) -> pl.DataFrame:
    """A roster's ruled state: each resident's place, flags and the reasons they are listed for."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        POS: np.arange(n, dtype=np.uint32), "resident_id": [f"R{i:04d}" for i in range(n)],
        "street": rng.choice(["东街", "西街"], n), "community": rng.choice(["一社区", "二社区"], n),
        "grid_id": rng.choice(["G1", "G2", "G3"], n), **{f: rng.random(n) < 0.4 for f in FLAGS},
        "tested_in_round": rng.random(n) < 0.5, "vaccination": rng.random(n) < 0.3,
        "name": [f"居民{v}" for v in rng.integers(0, 10_000, n)], "phone": [f"138{v:08d}" for v in rng.integers(0, 10**8, n)],
    }).with_columns(pl.col(POS).cast(pl.UInt32))


def ruled(residents: pl.DataFrame) -> RosterRules:
    """What rule_part leaves for these residents, in its order: untested rows by POS, then vaccination rows."""
    listed = ["resident_id", "name", "phone", POS]
    untested = residents.filter("untested").select(*listed, pl.lit("untested").alias("reason"))
    vaccination = residents.filter("vaccination").select(*listed, pl.lit("unvaccinated").alias("reason"))
    measures = residents.select(*FLAGS, "tested_in_round")
    return RosterRules(
        call_list=pl.concat([untested, vaccination]),
        measures=measures,
        grids=measures_by_grid(residents, measures.drop("tested_in_round")),
        escalation_inputs=residents.filter("untested").select("resident_id", "name", POS),
        wrong_numbers=residents.filter("away_reported").select("resident_id", "phone", POS),
    )


def test_splicing_residents_ruled_again_gives_what_ruling_everyone_gives_and_empties_the_kept_lists():
    before = city(400, seed=3)
    rng = np.random.default_rng(4)
    again_at = np.sort(rng.choice(400, 60, replace=False)).astype(np.uint32)
    changed = pl.DataFrame({POS: again_at}).join(city(400, seed=5).drop("resident_id", *GRID), on=POS, how="left")
    after = before.update(changed, on=POS)  # the same places, new flags, reasons and names for 60 residents
    kept = ruled(before)
    assert kept.call_list.height > 100 and kept.call_list.select(LIST_ORDER).to_series().is_sorted()

    spliced = splice(kept, after.filter(pl.col(POS).is_in(again_at)).select(POS, *GRID),
                     ruled(after.filter(pl.col(POS).is_in(again_at))))
    expected = ruled(after)
    for name in ("call_list", "measures", "escalation_inputs", "wrong_numbers"):
        assert getattr(spliced, name).equals(getattr(expected, name)), name
    assert spliced.grids.sort(GRID).equals(expected.grids.sort(GRID).cast(spliced.grids.schema))
    assert not spliced.call_list.equals(ruled(before).call_list)  # the residents did change
    # The kept lists' columns were taken as they were merged: a city's list is not held twice.
    assert kept.call_list.width == kept.escalation_inputs.width == kept.wrong_numbers.width == 0
