"""A city generated part by part (for the scaling benchmarks) must read as one city: one header per file,
no resident, record, grid or ID number used twice across parts, and truth for every record."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from flows.generate import write_city
from flows.readers import read_table
from transforms.contract import ROSTER, TESTS, VACCINATIONS


def test_a_city_written_in_parts_is_one_city(tmp_path):
    counts = write_city(2500, 3, datetime(2022, 5, 20, 18, 0), tmp_path, part_size=1000)
    roster = read_table(tmp_path / "roster.csv", ROSTER).frame
    tests = read_table(tmp_path / "tests.csv", TESTS).frame
    vaccinations = read_table(tmp_path / "vaccinations.csv", VACCINATIONS).frame
    truth = pl.read_csv(tmp_path / "truth" / "residents.csv", infer_schema=False)

    assert counts["residents"] == truth.height == 2500 == truth["resident_id"].n_unique()
    assert tests.height == counts["tests"] and vaccinations.height == counts["vaccinations"]
    # Only the generator's deliberately duplicated roster rows repeat a resident.
    people = roster.unique(subset=[c for c in roster.columns if c != "_line"])
    assert people["resident_id"].n_unique() == people.height == 2500
    assert tests["record_id"].n_unique() == tests.height
    assert vaccinations["record_id"].n_unique() == vaccinations.height
    ids = people.filter(pl.col("id_number").str.len_chars() == 18)["id_number"]
    assert ids.n_unique() == ids.len() > 2000
    # Three parts, each with grids of its own: grid numbers and streets continue, never restart.
    grids = people.group_by("grid_id").agg(pl.col("street", "grid_worker", "grid_worker_phone").n_unique())
    assert grids["street"].max() == grids["grid_worker"].max() == grids["grid_worker_phone"].max() == 1
    assert people["grid_id"].n_unique() >= 3 * (1000 // 300)
    links = pl.read_csv(tmp_path / "truth" / "test_links.csv", infer_schema=False)
    assert links.height == tests.height and set(links["record_id"]) == set(tests["record_id"])
    assert set(links["resident_id"].drop_nulls()) <= set(people["resident_id"])
