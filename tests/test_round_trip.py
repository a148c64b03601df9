"""Closing the loop with the grid workers, on generated data: refresh, workers fill in outcomes (with
openpyxl, not the library that wrote the books), refresh again, and every rule holds; the coverage report,
rendered by a real headless Chromium, shows the figures of coverage.csv."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import polars as pl
import pytest
from helpers import sorted_matches
from openpyxl import load_workbook

from flows.browser import chromium, dump_dom
from flows.cli import main as cli
from flows.generate import write_synthetic
from flows.readers import read_table
from flows.settings import load_settings
from transforms.contract import LIST_ZH, TESTS
from transforms.synthetic import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("loop")
    write_synthetic(generate(2500, seed=17), data)
    # A resident registered twice under two numbers: the roster-correction list must catch it.
    roster = pl.read_csv(data / "roster.csv", infer_schema=False)
    twin = roster.filter(pl.col("出生日期") != "").head(1).with_columns(pl.lit("R99999999").alias("人员编号"))
    pl.concat([roster, twin]).write_csv(data / "roster.csv", include_bom=True)
    return data


def _books(out: Path) -> list[Path]:
    return sorted((out / "sheets").rglob("*.xlsx"))


def _return_books(out: Path, outcomes: dict[str, str], folder: Path, note: str) -> list[Path]:
    """Copies every book a worker touched, with 联系结果 filled for the residents named, sorted differently."""
    folder.mkdir(parents=True, exist_ok=True)
    returned = []
    for book in _books(out):
        wb = load_workbook(book)
        touched = False
        for sheet in (LIST_ZH["call"], LIST_ZH["home_visit"], LIST_ZH["verify"]):
            ws = wb[sheet]
            header = [c.value for c in ws[1]]
            rid, outcome = header.index("人员编号"), header.index("联系结果")
            for row in ws.iter_rows(min_row=2):
                if row[rid].value in outcomes:
                    row[outcome].value = outcomes[row[rid].value]
                    row[header.index("备注")].value = note
                    touched = True
        if touched:
            target = folder / book.name
            wb.save(target)
            returned.append(target)
    return returned


class _Cells(HTMLParser):
    """Reads the data-level/data-id/data-key cells out of the rendered DOM."""

    def __init__(self):
        super().__init__()
        self.cells: dict[tuple[str, str, str], str] = {}
        self._open: tuple[str, str, str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-key" in a:
            self._open = (a["data-level"], a["data-id"], a["data-key"])
            self.cells[self._open] = ""

    def handle_data(self, data):
        if self._open is not None:
            self.cells[self._open] += data

    def handle_endtag(self, tag):
        self._open = None


def test_outcomes_changes_escalation_gaps_and_report(campaign, prefect_server, tmp_path, monkeypatch):
    import flows.ruling
    from flows.refresh import refresh

    settings = load_settings(campaign / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "g.duckdb"))
    first = refresh(settings)
    assert first.changes["first_run"]
    calls = pl.read_csv(settings.out / "call_list.csv", infer_schema=False)
    firm = calls.filter((pl.col("reason") == "untested") & (pl.col("list") == "call")).unique(
        "resident_id", keep="first", maintain_order=True)
    assert firm.height >= 8
    away, elsewhere, wrong, refused, unreachable, contacted, tested_now = firm["resident_id"].head(7).to_list()
    outcomes = {away: "外出不在本地", elsewhere: "已在外地检测", wrong: "号码错误", refused: "拒绝",
                unreachable: "无法联系", contacted: "已联系-将检测"}
    # Three rounds of calls to the unreachable resident, on three returned copies; one file sent twice.
    for i in range(3):
        returned = _return_books(settings.out, outcomes if i == 0 else {unreachable: "无法联系"},
                                 tmp_path / f"returned{i}", f"第{i + 1}次电话")
        assert cli(["feedback", "--config", str(campaign / "campaign.toml"), "--db", str(settings.duckdb.path),
                    *map(str, returned)]) == 0
    assert cli(["feedback", "--config", str(campaign / "campaign.toml"), "--db", str(settings.duckdb.path),
                *map(str, returned)]) == 0  # the same file again: its attempts are not counted twice

    # A test record for one of the untested arrives before the next refresh.
    tests = read_table(campaign / "tests.csv", TESTS).frame.drop("_line")
    roster = pl.read_csv(campaign / "roster.csv", infer_schema=False)
    person = roster.filter(pl.col("人员编号") == tested_now).row(0, named=True)
    extra = pl.DataFrame([{c: None for c in tests.columns} | {
        "record_id": "T99999999999", "name": person["姓名"], "id_number": person["证件号码"],
        "phone": person["联系电话"], "sampled_at": "2022-05-20 10:00:00", "site": "补采点"}])
    later = tmp_path / "tests_later.csv"
    pl.concat([tests, extra], how="vertical_relaxed").write_csv(later)
    settings2 = load_settings(campaign / "campaign.toml", tests=str(later), out=str(settings.out),
                              db=str(settings.duckdb.path))
    second = refresh(settings2)
    out = settings.out
    after = pl.read_csv(out / "call_list.csv", infer_schema=False)
    untested = after.filter(pl.col("reason") == "untested")

    def row(rid: str) -> dict:
        rows = untested.filter(pl.col("resident_id") == rid)
        assert rows.height == 1, rid
        return rows.row(0, named=True)

    assert untested.filter(pl.col("resident_id") == away).height == 0  # away: out of scope this round
    assert row(elsewhere)["list"] == "verify" and "外地检测" in row(elsewhere)["detail"]
    assert row(wrong)["list"] == "home_visit"
    assert row(contacted)["list"] == "call" and "已联系1次" in row(contacted)["detail"]
    assert "已联系3次" in row(unreachable)["detail"]
    assert untested.filter(pl.col("resident_id") == tested_now).height == 0

    coverage = pl.read_csv(out / "coverage.csv")
    total = coverage.filter(pl.col("level") == "total").row(0, named=True)
    before_total = first.coverage
    assert total["away_reported"] == 1 and total["in_scope"] == before_total["in_scope"] - 1

    ch = second.changes
    assert not ch["first_run"] and ch["came_off_tested"] >= 1 and ch["came_off_away"] == 1
    assert ch["remaining"] > 0 and ch["new"] + ch["remaining"] == after.select("resident_id", "reason").unique().height
    assert set(after["new_since_last"].fill_null("").unique()) <= {"", "是"}

    corrections = pl.read_csv(out / "roster_corrections.csv", infer_schema=False)
    assert wrong in corrections.filter(pl.col("problem").str.contains("电话"))["resident_id"].to_list()
    assert "R99999999" in corrections.filter(pl.col("problem").str.contains("重复"))["resident_id"].to_list()

    escalation = pl.read_csv(out / "escalation.csv", infer_schema=False)
    why = dict(zip(escalation["resident_id"], escalation["why"], strict=True))
    assert "拒绝" in why[refused] and "3次无法联系" in why[unreachable]
    assert contacted not in why
    priorities = escalation["priority"].to_list()
    assert priorities == sorted(priorities, key=lambda p: "一二三四".index(p[0]))  # bedridden first

    # A third refresh: whoever has been untested at every refresh of the round is escalated.
    (tmp_path / "parts").mkdir()
    shutil.copy(settings.duckdb.path, tmp_path / "parts" / settings.duckdb.path.name)  # the state before it
    third = refresh(settings2)
    escalation = pl.read_csv(out / "escalation.csv", infer_schema=False)
    # ... with the time the first refresh of the round was recorded, the same at every later refresh
    con = duckdb.connect(str(settings.duckdb.path), read_only=True)
    try:
        first_at = con.execute("SELECT strftime(recorded_at, '%m-%d %H:%M') FROM runs WHERE run_id = ?",
                               [first.run_id]).fetchall()[0][0]
    finally:
        con.close()
    assert escalation.filter(pl.col("why").str.contains(f"{first_at}起未检测（已达3次刷新）")).height > 0
    assert third.follow_up["escalation"] == escalation.height
    # The roster was the same file at each refresh: its duplicates and buildings' grids were found once.
    assert not first.inputs["roster"]["duplicates_and_places_reused"]
    assert third.inputs["roster"]["unchanged_since_last_load"]
    assert third.inputs["roster"]["duplicates_and_places_reused"]

    unreg = pl.read_csv(out / "unregistered.csv", infer_schema=False)
    assert unreg.height > 0 and unreg["why"].null_count() == 0
    assert not unreg["id_masked"].drop_nulls().str.contains(r"^\d{15,18}$").any()
    with_grid = unreg.filter(pl.col("grid_id").is_not_null())
    book = next(b for b in _books(out) if with_grid["grid_worker"][0] in b.name)
    assert "待登记人员" in load_workbook(book, read_only=True).sheetnames
    community_books = list((out / "community").rglob("*.xlsx"))
    assert community_books and "升级处理" in load_workbook(community_books[0], read_only=True).sheetnames

    pages = list((out / "print").rglob("*.html"))
    assert len(pages) == len(_books(out))
    page = next(p for p in pages if p.stem == book.stem).read_text(encoding="utf-8")
    assert "入户走访名单" in page and "break-inside:avoid" in page and re.search(r"<h2>\d+栋", page)

    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["changes"]["remaining"] >= 0 and run["follow_up"]["away_reported"] == 1

    # The same third refresh with the roster ruled 300 residents at a time (a city's is ruled a million at a
    # time): every list, its order and every figure as when the roster was ruled whole.
    assert first.inputs["roster"]["rows"] < flows.ruling.RULES_PART_ROWS
    monkeypatch.setattr(flows.ruling, "RULES_PART_ROWS", 300)
    in_parts = refresh(load_settings(campaign / "campaign.toml", tests=str(later), out=str(tmp_path / "parts_out"),
                                     db=str(tmp_path / "parts" / settings.duckdb.path.name)))
    for name in ("call_list.csv", "coverage.csv", "escalation.csv", "roster_corrections.csv", "unregistered.csv"):
        assert (tmp_path / "parts_out" / name).read_bytes() == (out / name).read_bytes(), name
    # (the decisions in one file here, in the last copy's files there: the same rows)
    assert sorted_matches(tmp_path / "parts_out").equals(sorted_matches(out))
    for part in ("changes", "follow_up", "coverage"):
        assert getattr(in_parts, part) == getattr(third, part), part
    carried = ("_written", "_reused", "_from_spares")  # the books and pages of a new folder are all written
    lists = lambda report: {k: n for k, n in report.lists.items() if not k.endswith(carried)}  # noqa: E731
    assert lists(in_parts) == lists(third)
    assert in_parts.linking["residents_tested"] == third.linking["residents_tested"]


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (make test installs it)")
def test_report_renders_in_chromium_with_the_figures_of_coverage_csv(campaign, prefect_server, tmp_path):
    from flows.refresh import refresh

    settings = load_settings(campaign / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "g.duckdb"))
    refresh(settings)
    out = settings.out
    png = out / "report.png"
    assert png.exists() and png.stat().st_size > 20_000 and png.read_bytes()[:4] == b"\x89PNG"
    shutil.copy(out / "report.html", tmp_path / "copy.html")  # rendered from a plain file, offline
    html = (tmp_path / "copy.html").read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html and "<script" not in html
    parser = _Cells()
    parser.feed(dump_dom(tmp_path / "copy.html"))
    coverage = pl.read_csv(out / "coverage.csv", infer_schema=False)
    checked = 0
    for r in coverage.filter(pl.col("level").is_in(["community", "grid", "total"])).iter_rows(named=True):
        ident = "|".join(r[c] or "" for c in ("street", "community", "grid_id")) if r["level"] != "total" else "||"
        for key in ("in_scope", "tested", "untested", "coverage_rate"):
            shown = parser.cells.get((r["level"], ident, key))
            if shown is None:
                continue
            expected = f"{float(r[key]):.1%}" if key == "coverage_rate" else r[key]
            assert shown.strip() == expected, (r["level"], ident, key)
            checked += 1
    grids = coverage.filter(pl.col("level") == "grid").height
    assert checked >= 4 * grids, "every grid's figures must be on the page"
