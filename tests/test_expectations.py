"""The contract's plausibility rules in row parsing, and the Great Expectations suites that check what
parsing let through: each expectation must be able to fail on rows that break it."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from expectations.docs import offline_html
from expectations.suites import validate_sources
from transforms.contract import INPUTS, ROSTER, TESTS, VACCINATIONS
from transforms.idcard import check_digit
from transforms.parsing import parse_rows

AS_OF = datetime(2022, 5, 20, 18, 0)


def _id(body17: str) -> str:
    return body17 + check_digit(body17)


def roster_raw(n: int = 20) -> pl.DataFrame:
    return pl.DataFrame({
        "_line": list(range(2, n + 2)),
        "resident_id": [f"R{i}" for i in range(n)],
        "name": [f"居民{i}" for i in range(n)],
        "id_number": [_id(f"44030519800101{i:03d}") for i in range(n)],
        "phone": [f"138{i:08d}" for i in range(n)],
        "birth_date": ["1980-01-01"] * n,
        "address": ["科技园1栋101"] * n,
        "street": ["粤海街道"] * n, "community": ["科技园社区"] * n, "grid_id": ["G1"] * n,
        "grid_worker": ["李网格"] * n,
    })


def test_times_after_as_of_or_before_2020_are_quarantined_with_the_reason():
    raw = pl.DataFrame({
        "_line": [2, 3, 4], "record_id": ["a", "b", "c"], "name": ["甲", "乙", "丙"],
        "sampled_at": ["2022-05-21 09:00", "2002-05-01 09:00", "2022-05-20 17:59"],
    })
    parsed = parse_rows(raw, TESTS, AS_OF)
    reasons = dict(zip(parsed.quarantine["_line"], parsed.quarantine["reason"], strict=True))
    assert "晚于本轮截止时间" in reasons[2] and "早于2020年" in reasons[3]
    assert set(parsed.quarantine["expectation"]) == {"expect_column_values_to_be_between(sampled_at)"}
    assert parsed.rows["_line"].to_list() == [4]


def test_implausible_birth_dates_keep_the_resident_and_lose_only_the_date():
    raw = roster_raw(3).with_columns(pl.Series("birth_date", ["1880-02-01", "2030-01-01", "1980-13-45"]))
    parsed = parse_rows(raw, ROSTER, AS_OF)
    assert parsed.quarantine.height == 0 and parsed.rows.height == 3
    assert parsed.rows["birth_date"].null_count() == 3
    assert parsed.notes["birth_date_implausible"] == 3


def test_odd_dose_numbers_are_blanked_and_counted():
    raw = pl.DataFrame({
        "_line": [2, 3, 4], "record_id": ["a", "b", "c"], "name": ["甲", "乙", "丙"],
        "vaccinated_at": ["2021-05-01"] * 3, "dose": ["第2剂", "0", "12"], "vaccine": ["科兴"] * 3,
    })
    parsed = parse_rows(raw, VACCINATIONS, AS_OF)
    assert parsed.rows["dose"].to_list() == [2, None, None]
    assert parsed.notes["dose_blanked"] == 2


def test_suites_pass_on_good_rows_and_write_data_docs(tmp_path):
    rows = parse_rows(roster_raw(), ROSTER, AS_OF).rows
    results = validate_sources({"roster": rows}, INPUTS, AS_OF, tmp_path)
    assert results["roster"].success, [e for e in results["roster"].expectations if not e.success]
    assert list(tmp_path.rglob("validations/roster_contract/**/*.html"))


def test_suites_fail_on_rows_that_break_the_contract(tmp_path):
    # Rows built past the parser, as a bug in it would let them through.
    rows = parse_rows(roster_raw(), ROSTER, AS_OF).rows
    broken = rows.with_columns(
        pl.when(pl.col("_line") < 6).then(pl.lit("R0")).otherwise(pl.col("resident_id")).alias("resident_id"),
        pl.when(pl.col("_line") < 10).then(pl.lit("123456789012345678")).otherwise(pl.col("id_number"))
        .alias("id_number"),
        pl.when(pl.col("_line") == 2).then(pl.lit("失联")).otherwise(pl.col("status")).alias("status"),
        pl.when(pl.col("_line") == 3).then(pl.date(2030, 1, 1)).otherwise(pl.col("birth_date")).alias("birth_date"),
    )
    result = validate_sources({"roster": broken}, INPUTS, AS_OF, tmp_path)["roster"]
    failed = {(e.expectation, e.column): e.unexpected_count for e in result.expectations if not e.success}
    assert not result.success
    assert failed[("expect_column_values_to_be_unique", "resident_id")] == 4
    assert failed[("expect_column_values_to_be_in_set", "id_check")] == 8
    assert failed[("expect_column_values_to_be_in_set", "status")] == 1
    assert failed[("expect_column_values_to_be_between", "birth_date")] == 1


def test_offline_html_drops_every_external_reference():
    page = (
        '<html><head><link rel="stylesheet" href="https://cdn.example.org/b.css"/>'
        '<script src="https://cdn.example.org/j.js"></script><script>$(x)</script></head>'
        '<body><img src="//img.example.org/l.png"><a href="https://example.org/n">n</a>'
        '<form action="https://example.org/f"><input></form><p>期望</p></body></html>'
    )
    out = offline_html(page).lower()
    assert "example.org" not in out and "<script" not in out and "<link" not in out and "<form" not in out
    assert "期望" in offline_html(page) and "gridsweep-offline" in out


def test_a_big_file_is_judged_on_a_fixed_sample_and_still_fails_when_it_is_bad(tmp_path):
    rows = parse_rows(roster_raw(), ROSTER, AS_OF).rows
    bad_ids = rows.with_columns(
        pl.when(pl.col("_line") % 2 == 0).then(pl.lit("123456789012345678")).otherwise(pl.col("id_number"))
        .alias("id_number"))
    result = validate_sources({"roster": bad_ids}, INPUTS, AS_OF, tmp_path / "a", sample_rows=10)["roster"]
    assert (result.rows_checked, result.rows_total) == (10, rows.height)
    id_check = next(e for e in result.expectations if e.column == "id_check")
    assert not result.success and not id_check.success and id_check.element_count == 10
    again = validate_sources({"roster": bad_ids}, INPUTS, AS_OF, tmp_path / "b", sample_rows=10)["roster"]
    assert again.expectations == result.expectations  # the same sample every time
    whole = validate_sources({"roster": rows}, INPUTS, AS_OF, tmp_path / "c", sample_rows=rows.height)["roster"]
    assert whole.success and whole.rows_checked == whole.rows_total == rows.height


def test_the_sample_of_a_file_read_in_slices_is_uniform_and_the_same_however_it_is_sliced():
    from expectations.suites import RowSample

    rows = pl.DataFrame({"position": range(100_000)})
    whole = RowSample(1000).add(rows).rows()
    assert whole.height == 1000 and whole["position"].n_unique() == 1000
    # A row at a time on a shorter file (100,000 calls to add took a minute), then slices that straddle the
    # sample size and slices far bigger than it.
    for height, size in ((5_000, 1), (100_000, 999), (100_000, 40_000)):
        file = rows.head(height)
        expected = whole if height == rows.height else RowSample(1000).add(file).rows()
        sliced = RowSample(1000)
        for part in file.iter_slices(size):
            sliced.add(part)
        assert sliced.seen == height and sliced.rows().sort("position").equals(expected.sort("position")), size
    # Uniform: a tenth of the sample in each tenth of the file, give or take (binomial sd about 9.5).
    per_tenth = whole.group_by(pl.col("position") // 10_000).len()["len"]
    assert per_tenth.len() == 10 and per_tenth.min() > 60 and per_tenth.max() < 140
    small = RowSample(1000).add(rows.head(10))
    assert small.rows().equals(rows.head(10))  # fewer rows than the sample: every row, in order
    assert RowSample(0).add(rows).rows().equals(rows)  # 0: every row
