"""Malformed and hostile files: a clear InputError or a correct quarantine, never a crash or a lost row."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.readers import InputError, read_table
from transforms.contract import TESTS
from transforms.parsing import parse_rows

NASTY = [
    "", " ", "张三", "=CMD|' /C calc'!A0", "+SUM(1,2)", "@foo", "4.40307199E+17", "11010519491231002X",
    "2022-05-20 09:00:00", "2022/13/45", "昨天", "x" * 5000, "a,b", 'say "hi"', "line\nbreak", "\u200b", "𠮷野家",
    "NULL", "#VALUE!", "１３８００１３８０００",
]
HEADERS = [
    ["采样编号", "姓名", "证件号码", "手机号码", "采样时间"],
    ["record_id", "name", "id_number", "phone", "sampled_at"],
    ["*采样编号", " 姓名 ", "身份证号", "手机号", "采样时间（必填）"],  # decorations and a typo
    ["采样编号", "姓名", "姓名", "采样时间"],  # duplicated header
    ["采样编号", "采样时间"],  # a required column missing
]


def check(path: Path) -> None:
    try:
        raw = read_table(path, TESTS)
    except InputError as exc:
        assert str(path) in str(exc)
        return
    parsed = parse_rows(raw.frame, TESTS)
    assert parsed.rows.height + parsed.quarantine.height == raw.frame.height
    if parsed.quarantine.height:
        assert parsed.quarantine["reason"].null_count() == 0


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.sampled_from(HEADERS),
    rows=st.lists(st.lists(st.sampled_from(NASTY), min_size=0, max_size=7), max_size=12),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16"]),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
)
def test_random_csv_never_crashes_nor_loses_rows(header, rows, encoding, cut):
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    data = buf.getvalue().encode(encoding, errors="replace")
    if cut is not None:
        data = data[:cut]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "export.csv"
        p.write_bytes(data)
        check(p)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_are_a_clear_error_or_a_table(data):
    with tempfile.TemporaryDirectory() as d:
        for name in ("export.csv", "export.xlsx", "export.parquet"):
            p = Path(d) / name
            p.write_bytes(data)
            check(p)


def test_no_row_is_lost_when_rows_are_well_formed(tmp_path):
    rows = [[f"T{i}", "张三" if i % 3 else "", "", "", "2022-05-20 09:00" if i % 5 else "垃圾"] for i in range(200)]
    p = tmp_path / "t.csv"
    with open(p, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([HEADERS[0], *rows])
    raw = read_table(p, TESTS)
    parsed = parse_rows(raw.frame, TESTS)
    assert raw.frame.height == 200
    assert parsed.rows.height == len([r for r in rows if r[1] and r[4] != "垃圾"])
    reasons = parsed.quarantine["reason"].to_list()
    assert "缺少必填项：姓名" in reasons and "无法识别的时间：采样时间" in reasons


def test_a_million_empty_rows_are_formatting_not_people(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(",".join(HEADERS[0]) + "\n" + "T1,张三,,,2022-05-20 09:00\n" + ",,,,\n" * 1_000_000, encoding="utf-8")
    raw = read_table(p, TESTS)
    assert raw.frame.height == 1 and raw.frame["_line"].to_list() == [2]


def test_empty_sheet_is_a_clear_error(tmp_path):
    import xlsxwriter

    p = tmp_path / "t.xlsx"
    wb = xlsxwriter.Workbook(str(p))
    wb.add_worksheet()
    wb.close()
    try:
        read_table(p, TESTS)
    except InputError as exc:
        assert "empty" in str(exc)
    else:
        raise AssertionError("an empty workbook must be refused")


def test_formula_like_cells_stay_text_in_the_quarantine_workbook(tmp_path):
    from openpyxl import load_workbook

    from flows.workbooks import write_quarantine_workbook

    frame = pl.DataFrame({"_line": [2], "reason": ["缺少必填项：采样时间"], "record_id": ["T1"], "name": ["=1+1"],
                          "sampled_at": [None]}, schema_overrides={"sampled_at": pl.String})
    path = tmp_path / "q.xlsx"
    write_quarantine_workbook(frame, TESTS, path)
    ws = load_workbook(path)["隔离记录"]
    assert [c.value for c in ws[1]][:3] == ["行号", "原因", "采样编号"]
    assert ws.cell(row=2, column=4).value == "=1+1" and ws.cell(row=2, column=4).data_type == "s"
