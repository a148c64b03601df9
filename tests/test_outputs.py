"""Worker workbooks opened back with openpyxl (a different library from the writer), and the contract
as the single source every output column comes from."""

from __future__ import annotations

import re
from datetime import datetime

import polars as pl
import pytest
from openpyxl import load_workbook

from flows.workbooks import write_workbook
from transforms.contract import (
    CALL_LIST,
    CONTACT_OUTCOMES,
    ESCALATION,
    INPUTS,
    ROSTER_CORRECTIONS,
    UNREGISTERED,
)
from transforms.coverage import build_coverage
from transforms.sheets import SHEETS, build_community_books, build_worker_books

AS_OF = datetime(2022, 5, 20, 18, 0)


def call_rows() -> pl.DataFrame:
    base = {"street": "粤海街道", "community": "科技园社区", "grid_id": "G1", "grid_worker": "李网格", "tags": "",
            "id_masked": "110105********002X", "unit": "1", "candidate_record": None, "new_since_last": ""}
    rows = [
        {"resident_id": "R3", "name": "=HYPERLINK(\"x\")", "phone": "13800000003", "address": "a", "list": "call",
         "reason": "untested", "detail": "本轮未检测", "building": "10", "room": "101"},
        {"resident_id": "R1", "name": "张三", "phone": "13800000001", "address": "a", "list": "call",
         "reason": "untested", "detail": "本轮未检测", "building": "2", "room": "1202"},
        {"resident_id": "R2", "name": "李四", "phone": "13800000002", "address": "a", "list": "call",
         "reason": "untested", "detail": "本轮未检测", "building": "2", "room": "301"},
        {"resident_id": "R4", "name": "王五", "phone": "13800000004", "address": "a", "list": "home_visit",
         "reason": "untested", "detail": "本轮未检测", "building": "1", "room": "101"},
        {"resident_id": "R5", "name": "赵六", "phone": "13800000005", "address": "a", "list": "verify",
         "reason": "untested", "detail": "疑似本人检测记录", "building": "1", "room": "102",
         "candidate_record": "test:T9"},
        {"resident_id": "R1", "name": "张三", "phone": "13800000001", "address": "a", "list": "call",
         "reason": "booster_due", "detail": "可接种加强针", "building": "2", "room": "1202"},
    ]
    return pl.DataFrame([base | r for r in rows]).select(CALL_LIST.names)


def status_rows() -> pl.DataFrame:
    return pl.DataFrame({
        "street": ["粤海街道"] * 3, "community": ["科技园社区"] * 3, "grid_id": ["G1"] * 3, "status": ["在住", "在住", "外出"],
        "in_scope": [True, True, False], "in_scope_testing": [True, True, False], "away_reported": [False] * 3,
        "tested_in_round": [True, False, False],
        "test_candidate": [None, None, None], "vaccination_eligible": [True, True, False], "doses": [2, 0, 0],
        "series_doses": [2, 2, 2], "vaccination_reason": [None, "unvaccinated", None],
    }, schema_overrides={"test_candidate": pl.String})


def test_workbook_round_trip(tmp_path):
    coverage = build_coverage(status_rows())
    workers = pl.DataFrame({"street": ["粤海街道"], "community": ["科技园社区"], "grid_id": ["G1"], "grid_worker": ["李网格"]})
    (book,) = build_worker_books(call_rows(), coverage, workers, as_of_text="2022-05-20 18:00")
    path = tmp_path / book.file_name
    write_workbook(book, path)
    wb = load_workbook(path)
    assert wb.sheetnames == ["汇总", *SHEETS]
    calls = wb["电话通知"]
    header = [c.value for c in calls[1]]
    assert header[:4] == ["序号", "姓名", "联系电话", "居住地址"]
    assert header[-2:] == ["联系结果", "备注"]
    names = [r[1] for r in calls.iter_rows(min_row=2, values_only=True)]
    assert names == ["李四", "张三", '=HYPERLINK("x")']  # building 2 room 301, 2/1202, then building 10
    cell = calls.cell(row=4, column=2)
    assert cell.data_type == "s"  # a name that looks like a formula stays text
    assert calls.freeze_panes == "C2"
    validations = calls.data_validations.dataValidation
    assert len(validations) == 1 and validations[0].formula1 == '"' + ",".join(CONTACT_OUTCOMES) + '"'
    assert calls.print_title_rows == "$1:$1"
    ids = [r[header.index("证件号码")] for r in calls.iter_rows(min_row=2, values_only=True)]
    assert all(i == "110105********002X" for i in ids)
    assert [r[1] for r in wb["上门采样"].iter_rows(min_row=2, values_only=True)] == ["王五"]
    assert [r[1] for r in wb["待核实"].iter_rows(min_row=2, values_only=True)] == ["赵六"]
    verify = wb["待核实"]
    vheader = [c.value for c in verify[1]]
    assert vheader[-4:] == ["候选记录编号", "核实结论", "联系结果", "备注"]
    assert next(verify.iter_rows(min_row=2, values_only=True))[vheader.index("候选记录编号")] == "test:T9"
    assert {v.formula1 for v in verify.data_validations.dataValidation} == {
        '"' + ",".join(CONTACT_OUTCOMES) + '"', '"是本人,不是本人"'}
    assert [r[1] for r in wb["疫苗接种"].iter_rows(min_row=2, values_only=True)] == ["张三"]
    summary = {r[0]: r[1] for r in wb["汇总"].iter_rows(min_row=3, values_only=True)}
    assert summary["在住人数"] == "2" and summary["本轮已检测"] == "1" and summary["检测覆盖率"] == "50.0%"


def test_coverage_rollups_add_up():
    cov = build_coverage(status_rows())
    by_level = {r["level"]: r for r in cov.to_dicts()}
    assert by_level["grid"]["in_scope"] == by_level["community"]["in_scope"] == by_level["total"]["in_scope"] == 2
    assert by_level["total"]["coverage_rate"] == 0.5
    assert by_level["total"]["status_外出"] == 1


def test_every_sheet_column_is_declared_in_the_contract():
    declared = set(CALL_LIST.names) | {"reason_zh"}
    for _, (_, cols) in SHEETS.items():
        assert set(cols) <= declared


def test_great_expectations_suites_only_name_contract_columns():
    from expectations.suites import ID_CHECK, PHONE_CHECK, build_suite

    for contract in INPUTS.values():
        suite = build_suite(contract)
        for exp in suite.expectations:
            col = getattr(exp, "column", None)
            if col is not None:
                assert col in [*contract.names, ID_CHECK, PHONE_CHECK], (contract.name, col)


def test_workbook_layout_as_excel_reads_it(tmp_path):
    """What a worker sees: styled header, yellow fill-in columns, widths, filter, A4 landscape one page wide,
    the header row on every printed page."""
    coverage = build_coverage(status_rows())
    workers = pl.DataFrame({"street": ["粤海街道"], "community": ["科技园社区"], "grid_id": ["G1"], "grid_worker": ["李网格"]})
    (book,) = build_worker_books(call_rows(), coverage, workers, as_of_text="2022-05-20 18:00")
    path = tmp_path / book.file_name
    write_workbook(book, path)
    ws = load_workbook(path)["电话通知"]
    header = [c.value for c in ws[1]]
    assert ws["A1"].font.b and ws["A1"].fill.fgColor.rgb.endswith("DDEBF7") and ws["A1"].border.left.style == "thin"
    outcome = header.index("联系结果") + 1
    assert ws.cell(row=2, column=outcome).fill.fgColor.rgb.endswith("FFF2CC")
    assert ws.cell(row=2, column=outcome).protection.locked is False
    assert ws.cell(row=2, column=2).alignment.wrap_text and ws.cell(row=2, column=2).border.bottom.style == "thin"
    assert ws.auto_filter.ref == f"A1:{ws.cell(row=1, column=len(header)).column_letter}4"
    assert ws.column_dimensions["B"].width > 8 and ws.column_dimensions["C"].width > ws.column_dimensions["A"].width
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.paperSize == 9
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToHeight == 0
    assert "李网格" in ws.oddHeader.left.text and ws.page_margins.left == 0.3
    (validation,) = ws.data_validations.dataValidation
    assert str(validation.sqref) == f"{ws.cell(row=2, column=outcome).coordinate}:{ws.cell(row=204, column=outcome).coordinate}"
    assert load_workbook(path)["汇总"]["A1"].font.sz == 14


def test_hostile_text_comes_back_exactly(tmp_path):
    """Markup, control characters, Excel's own escape form and characters outside the BMP all survive.
    Control characters cannot be in XML: they are written as Excel's _xHHHH_ form (which Excel shows as
    the character and openpyxl leaves as it is), and a literal _xHHHH_ in the text is escaped in turn."""
    import zipfile
    from xml.etree import ElementTree

    from flows.xlsx import _MAIN, Sheet, write_xlsx

    texts = ["<b>&amp;</b>", "a\x01b\x1fc", "_x0041_ stays", "𠀀𪚥 rare", "=SUM(A1)", "  spaced  ", "", "tab\tnew\nline",
             "\nafter a break", "ends in a tab\t", "长" * 40_000]
    frame = pl.DataFrame({"文本": texts, "空": [None] * len(texts)}, schema={"文本": pl.String, "空": pl.String})
    path = tmp_path / "h.xlsx"
    write_xlsx(path, [Sheet("表'1", frame=frame, styles=["cell", "fill"], autofilter=True, landscape_a4=True)])
    ws = load_workbook(path)["表'1"]
    back = [r[0] for r in ws.iter_rows(min_row=2, values_only=True)]
    excel_form = {"a\x01b\x1fc": "a_x0001_b_x001F_c", "_x0041_ stays": "_x005F_x0041_ stays",
                  "长" * 40_000: "长" * 32_767}  # Excel's limit per cell
    assert back == [excel_form.get(t, t) or None for t in texts]
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith((".xml", ".rels")):
                ElementTree.fromstring(z.read(name))  # every part well-formed
        # Excel trims a text's end spaces unless the element says to keep them
        kept = {t.text: t.get("{http://www.w3.org/XML/1998/namespace}space")
                for t in ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml")).iter(f"{{{_MAIN}}}t")}
    assert {text for text, space in kept.items() if space == "preserve"} == {"  spaced  ", "\nafter a break", "ends in a tab\t"}
    assert all(r[1] is None for r in ws.iter_rows(min_row=2, values_only=True))
    assert ws.print_title_rows == "$1:$1"


def _seven_books() -> list:
    """Seven workers' books, each with the sample rows under their own grid (some with a row fewer), one with none."""
    rows = call_rows()
    workers = pl.DataFrame({"street": ["粤海街道"] * 7, "community": ["科技园社区"] * 7,
                            "grid_id": [f"G{i}" for i in range(7)], "grid_worker": [f"网格员{i}" for i in range(7)]})
    calls = pl.concat([rows.head(6 - i % 2).with_columns(pl.lit(f"G{i}").alias("grid_id"),
                                                         pl.lit(f"网格员{i}").alias("grid_worker")) for i in range(6)])
    books = build_worker_books(calls, build_coverage(status_rows()), workers, as_of_text="2022-05-20 18:00")
    assert len(books) == 7
    return books


def test_a_helper_process_that_dies_while_writing_books_is_an_error_that_says_so(tmp_path, monkeypatch):
    """A helper ended by the kernel (out of memory) stops the writing with an error, not a publish with books
    missing; no process is left behind."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    import flows.workbooks
    from flows.workbooks import write_workbooks

    class Dying(ProcessPoolExecutor):
        def submit(self, fn, jobs):
            return super().submit(os._exit, 9)  # as the kernel's OOM killer would end it

    monkeypatch.setattr(flows.workbooks, "ProcessPoolExecutor", Dying)
    monkeypatch.setattr(flows.workbooks, "BOOKS_PER_BATCH", 1)
    with pytest.raises(RuntimeError, match="a process writing the workbooks ended before it was done"):
        write_workbooks([(b, tmp_path / b.file_name) for b in _seven_books()], workers=2)
    assert multiprocessing.active_children() == []


def test_books_written_in_batches_here_and_by_a_helper_process_are_the_books_written_one_by_one(tmp_path, monkeypatch):
    """A city's books are rendered a batch at a time by two writers, a thread here and a helper process sent
    its batches: every book there, each as it is alone."""
    import zipfile
    from concurrent.futures import ProcessPoolExecutor

    import flows.workbooks
    from flows.workbooks import write_workbooks

    sent = []

    class Counted(ProcessPoolExecutor):  # a real pool, counting the batches it is sent
        def submit(self, fn, jobs):
            sent.append(len(jobs))
            return super().submit(fn, jobs)

    monkeypatch.setattr(flows.workbooks, "ProcessPoolExecutor", Counted)
    books = _seven_books()
    monkeypatch.setattr(flows.workbooks, "BOOKS_PER_BATCH", 2)  # four batches, the last of one book
    write_workbooks([(b, tmp_path / "batched" / b.file_name) for b in books], workers=2)
    assert sent and sum(sent) < len(books)  # the helper wrote some batches, and this process the others
    for b in books:
        write_workbook(b, tmp_path / "alone" / b.file_name)
        batched = zipfile.ZipFile(tmp_path / "batched" / b.file_name)
        alone = zipfile.ZipFile(tmp_path / "alone" / b.file_name)
        assert batched.namelist() == alone.namelist()
        for part in batched.namelist():
            if part != "docProps/core.xml":  # the creation time
                assert batched.read(part) == alone.read(part), (b.file_name, part)


def test_print_pages_rendered_a_community_at_a_time_are_each_workers_walk(tmp_path):
    """Pages are rendered from one community's rows at a time: each page is its worker's rows of the whole
    walk (grid, building, unit, room), whatever order the call list came in and however the workers'
    names sort against their grids."""
    from flows.print_pages import print_pages
    from transforms.print_sheet import WORKER, page_bodies, page_html, person_lines
    from transforms.sheets import walk_order

    # Building 2 with two units (unit 2 typed first), so a building's blocks and their order are seen; building 1's
    # units are named, not numbered, so the walk (by room) goes 东, 西, 东 and the block of 东 gathers two rooms.
    rows = call_rows()
    third = rows.filter(pl.col("resident_id") == "R5").with_columns(pl.lit("R6").alias("resident_id"),
                                                                    pl.lit("103").alias("room"))
    rows = pl.concat([rows.filter(pl.col("building") == "1"), third, rows.filter(pl.col("building") != "1")])
    rows = rows.with_columns(
        pl.when(pl.col("building") == "1").then(pl.when(pl.col("room") == "102").then(pl.lit("西")).otherwise(pl.lit("东")))
        .when(pl.col("room").str.starts_with("1")).then(pl.lit("2")).otherwise(pl.col("unit")).alias("unit"))
    parts, grid_rows = [], []
    for c, community in enumerate(["科技园社区", "高新社区", "桂庙社区"]):
        for w in range(3):
            grid, worker = f"G{c}{2 - w}", f"网格员{w}"  # worker order and grid order disagree
            grid_rows.append({"street": "粤海街道", "community": community, "grid_id": grid, "grid_worker": worker})
            if (c, w) != (1, 1):  # one worker with nobody on the list
                parts.append(rows.head(6 - w).with_columns(
                    pl.lit(community).alias("community"), pl.lit(grid).alias("grid_id"),
                    pl.lit(worker).alias("grid_worker"),
                    (pl.col("resident_id") + f"-{c}{w}").alias("resident_id")))
    calls = pl.concat(parts).sample(fraction=1.0, shuffle=True, seed=4)
    workers = pl.DataFrame(grid_rows)
    books = build_worker_books(calls, build_coverage(status_rows()), workers, as_of_text="2022-05-20 18:00")
    pages = list(print_pages(calls, books, "2022-05-20 18:00"))
    assert len(pages) == len(books) == 9
    whole = person_lines(walk_order(calls))  # every worker's lines from the city's walk, as it was rendered
    for book, printed in zip(books, pages, strict=True):
        (street, community, name), page = printed.place, printed.render()
        mine = whole.filter((pl.col("street") == book.street) & (pl.col("community") == book.community)
                            & (pl.col("grid_worker") == book.grid_worker))
        assert (street, community) == (book.street, book.community) and name.endswith(".html")
        alone = page_bodies(mine.select(whole.columns))  # this worker's lines made into a page by themselves
        body, people = (alone["body"].cast(pl.Binary)[0], alone["people"][0]) if alone.height else (b"", 0)
        assert page == page_html(body, people, street=book.street, community=book.community,
                                 grid_worker=book.grid_worker, grids="、".join(book.grid_ids),
                                 as_of_text="2022-05-20 18:00")
        page = page.decode()
        assert page.count("<tr><td") == mine.height and (mine.height > 0) == ((book.community, book.grid_worker) != (
            "高新社区", "网格员1")), (book.community, book.grid_worker)
    assert set(WORKER) <= set(whole.columns)
    # a line is a row of eight cells, the last (the box ticked by hand) empty and closed
    assert all(line.startswith("<tr><td>") and line.count("<td>") == 8 and line.endswith("<td></td>")
               for line in whole["line"])
    # A block's pages rendered for some of its workers (publish asks for those whose page changed) are those
    # workers' pages rendered with the whole block.
    for printed in pages:
        block = printed.bodies(None)
        some = [printed.key, ("粤海街道", "桂庙社区", "网格员2"), ("无此街道", "无此社区", "无此人")]
        assert printed.bodies(some) == {k: block[k] for k in some if k in block}
    assert sum(len(printed.bodies([printed.key])) for printed in pages) == 8  # each worker with a list, alone
    # The page reads as the walk does: a section per building (in the order the walk first comes to it, with
    # its count), in it a block per unit (likewise), in it the unit's lines in walking order.
    for book, printed in zip(books, pages, strict=True):
        mine = whole.filter((pl.col("community") == book.community) & (pl.col("grid_worker") == book.grid_worker))
        walk: dict[str, dict[str, list[str]]] = {}
        for building, unit, line in mine.select("building", "unit", "line").iter_rows():
            walk.setdefault(building, {}).setdefault(unit, []).append(line)
        expected = "".join(
            f"<section><h2>{building + '栋' if building else '楼栋不详'}（{sum(map(len, units.values()))} 人）</h2>"
            + "".join("<tbody>" + "".join(lines) + "</tbody>" for lines in units.values()) + "</table></section>"
            for building, units in walk.items())
        shown = re.sub(r"<table><thead>.*?</thead>", "", printed.render().decode().replace("\n", ""))
        assert expected in shown and shown.count("<section>") == len(walk), (book.community, book.grid_worker)
        if "1" in walk:
            assert list(walk["1"]) == ["东", "西"] and len(walk["1"]["东"]) == 2 and shown.count("<tbody>") == sum(
                map(len, walk.values()))
    # A page's digest is the same exactly when the page shows the same (but its time): the call list shuffled
    # (rows of one person tied in the walk may then swap, and the page with them), changed in one cell.
    shuffled = list(print_pages(calls.sample(fraction=1.0, shuffle=True, seed=9), books, "2022-05-20 20:00"))
    same = [a.digest == b.digest for a, b in zip(pages, shuffled, strict=True)]
    assert same == [a.render().replace(b"18:00", b"20:00") == b.render() for a, b in zip(pages, shuffled, strict=True)]
    assert any(same) and len({p.digest for p in pages}) == len(pages)
    again = [p.digest for p in pages]
    changed = calls.with_columns(pl.when(pl.col("resident_id") == "R2-00").then(pl.lit("另一说明"))
                                 .otherwise(pl.col("detail")).alias("detail"))
    after = [p.digest for p in print_pages(changed, books, "2022-05-20 18:00")]
    assert [a != b for a, b in zip(after, again, strict=True)] == [
        (b.community, b.grid_worker) == ("科技园社区", "网格员0") for b in books]


def test_pages_whose_bodies_are_made_blocks_ahead_are_each_page_rendered_alone(tmp_path, monkeypatch):
    """publish writes the changed pages a block at a time, their bodies made by threads blocks ahead of the
    writing: with a block per community and more blocks than threads, each file is its page rendered alone, a
    block is asked for only the pages written, and no block's bodies are made twice."""
    import threading
    from dataclasses import replace

    import flows.print_pages as print_pages_module
    from flows.publish import BODIES_AHEAD, _write_pages

    monkeypatch.setattr(print_pages_module, "PAGE_BLOCK_ROWS", 1)  # every community a block of its own
    rows = call_rows()
    parts, grid_rows = [], []
    communities = [f"社区{c}" for c in range(BODIES_AHEAD + 3)]
    for c, community in enumerate(communities):
        for w in range(2):
            grid_rows.append({"street": "粤海街道", "community": community, "grid_id": f"G{c}{w}",
                              "grid_worker": f"网格员{w}"})
            parts.append(rows.head(3 + w).with_columns(
                pl.lit(community).alias("community"), pl.lit(f"G{c}{w}").alias("grid_id"),
                pl.lit(f"网格员{w}").alias("grid_worker"), (pl.col("resident_id") + f"-{c}{w}").alias("resident_id")))
    calls = pl.concat(parts)
    books = build_worker_books(calls, build_coverage(status_rows()), pl.DataFrame(grid_rows),
                               as_of_text="2022-05-20 18:00")
    pages = list(print_pages_module.print_pages(calls, books, "2022-05-20 18:00"))
    assert len({p.block for p in pages}) == len(communities) > BODIES_AHEAD + 1
    asked, threads = [], set()

    def counted(page):
        def bodies(keys):
            asked.append((page.block, sorted(keys)))
            threads.add(threading.current_thread().name)
            return page.bodies(keys)
        return replace(page, bodies=bodies)

    skipped = {pages[0].key, pages[3].key}  # as if unchanged: not written, not asked for
    todo = [(counted(p), str(tmp_path / f"{i}.html")) for i, p in enumerate(pages) if p.key not in skipped]
    assert _write_pages(todo) == len(todo)
    for i, page in enumerate(pages):
        written = tmp_path / f"{i}.html"
        assert written.exists() == (page.key not in skipped)
        if page.key not in skipped:
            assert written.read_bytes() == page.render()
    by_block: dict = {}
    for page, _ in todo:
        by_block.setdefault(page.block, []).append(page.key)
    assert sorted(asked) == sorted((block, sorted(keys)) for block, keys in by_block.items())
    assert threads and all(name.startswith("page-bodies") for name in threads)


def test_the_reports_picture_is_taken_of_its_top_and_a_failed_picture_does_not_stop_the_run(tmp_path, monkeypatch):
    """report.png shows the charts: Chromium gets the page without the tables of every community and grid (at
    20M tens of megabytes, 40 s to load). If Chromium fails or hangs, run.json says so and the rest is
    published."""
    import subprocess
    from types import SimpleNamespace

    import flows.browser
    from flows.publish import _write_report
    from transforms.report import coverage_report_pages

    coverage = build_coverage(status_rows())
    args = (coverage, call_rows(), [("05-20 18:00", 0.5)], {"first_run": True})
    whole, top = coverage_report_pages(*args, title="粤海街道", as_of_text="2022-05-20 18:00")
    assert "<h2>各网格</h2>" in whole and "<h2>各社区</h2>" in whole
    assert "<h2>各网格</h2>" not in top and "<h2>各社区</h2>" not in top
    assert top.removesuffix("</body></html>") == whole.split("<h2>各社区</h2>")[0]  # the same top

    shown = []

    def fake_screenshot(page, png, **kw):
        shown.append(page.read_text(encoding="utf-8"))
        png.write_bytes(b"\x89PNG")

    monkeypatch.setattr(flows.browser, "chromium", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(flows.browser, "screenshot", fake_screenshot)
    report = SimpleNamespace(lists={})
    (tmp_path / "a").mkdir()
    _write_report(tmp_path / "a", whole, top, coverage, report)
    assert shown == [top] and report.lists["report_png"] == "report.png"
    assert (tmp_path / "a" / "report.html").read_text(encoding="utf-8") == whole
    assert (tmp_path / "a" / "report.png").exists() and not (tmp_path / "a" / "report.html.png").exists()

    def hung(page, png, **kw):
        png.write_bytes(b"")  # half-written
        raise subprocess.TimeoutExpired("chromium", 60)

    monkeypatch.setattr(flows.browser, "screenshot", hung)
    (tmp_path / "b").mkdir()
    _write_report(tmp_path / "b", whole, top, coverage, report)
    assert report.lists["report_png"] == "failed: TimeoutExpired"
    assert (tmp_path / "b" / "report.html").exists() and not (tmp_path / "b" / "report.png").exists()


def test_the_books_digests_taken_together_are_each_book_s_own():
    """The sheets of all books are cut from one frame per sheet and their digests made for all books at once:
    each book's sheets must be its own rows (序号 from 1, in walking order), each digest the one the book gets
    when built alone, changing with any row of the book, its order or its owner, and only for that book."""
    from transforms.sheets import book_digests

    rows = call_rows()
    workers = pl.DataFrame({"street": ["粤海街道"] * 5, "community": ["科技园社区"] * 5,
                            "grid_id": [f"G{i}" for i in range(5)], "grid_worker": [f"网格员{i}" for i in range(5)]})
    calls = pl.concat([rows.head(6 - i).with_columns(pl.lit(f"G{i}").alias("grid_id"),
                                                     pl.lit(f"网格员{i}").alias("grid_worker")) for i in range(4)])
    coverage = build_coverage(status_rows())
    books = build_worker_books(calls, coverage, workers, as_of_text="2022-05-20 18:00")
    digests = book_digests(books)
    assert len(set(digests)) == len(books) == 5
    for i, book in enumerate(books):  # each book's rows, and only its own, however the city's were cut
        alone = build_worker_books(calls.filter(pl.col("grid_id") == f"G{i}"), coverage,
                                   workers.filter(pl.col("grid_id") == f"G{i}"), as_of_text="2022-05-20 20:00")
        assert book_digests(alone) == [digests[i]]
        for name, frame in book.sheets.items():
            assert frame.equals(alone[0].sheets[name]) and frame.columns == books[4].sheets[name].columns
            assert frame["序号"].to_list() == [str(n) for n in range(1, frame.height + 1)]
            assert set(frame["网格编号"]) <= {f"G{i}"} and book.sheets.height(name) == frame.height
        assert sum(frame.height for frame in book.sheets.values()) == calls.filter(
            pl.col("grid_id") == f"G{i}").height
    communities = build_community_books(
        pl.DataFrame(schema=dict.fromkeys(ESCALATION.names, pl.String)),
        pl.DataFrame(schema=dict.fromkeys(UNREGISTERED.names, pl.String)).vstack(pl.DataFrame(
            [{c: f"{c}-{i}" for c in UNREGISTERED.names} | {"street": "粤海街道", "community": "科技园社区"}
             for i in range(3)])),
        pl.DataFrame(schema=dict.fromkeys(ROSTER_CORRECTIONS.names, pl.String)), workers, as_of_text="x")
    assert [b.sheets.height(name) for b in communities for name in b.sheets] == [0, 3, 0]
    changed = calls.with_columns(pl.when((pl.col("grid_id") == "G2") & (pl.col("resident_id") == "R2"))
                                 .then(pl.lit("13900000002")).otherwise(pl.col("phone")).alias("phone"))
    again = book_digests(build_worker_books(changed, coverage, workers, as_of_text="2022-05-20 20:00"))
    assert [a != b for a, b in zip(digests, again, strict=True)] == [b.grid_ids == ("G2",) for b in books]
    assert [a.sheets != b.sheets for a, b in zip(digests, again, strict=True)] == [
        b.grid_ids == ("G2",) for b in books]
    # The same rows in another order: the sheet shows them so, and its digest says so (the rows' places weigh).
    from transforms.sheet_rows import sheet_rows

    two = pl.DataFrame({"k": ["a", "a", "b"], "v": ["x", "y", "z"]})
    forth, back = (sheet_rows(frame, ["k"], [pl.col("v")]).spans for frame in (two, two[[1, 0, 2]]))
    assert forth["_s1"][0] != back["_s1"][0] and forth["_s2"][0] != back["_s2"][0]
    assert forth.select("_n", "_s1", "_s2").row(1) == back.select("_n", "_s1", "_s2").row(1)
    apart = sheet_rows(pl.DataFrame({"k": ["a", "b", "a"], "v": ["x", "z", "y"]}), ["k"], [pl.col("v")])
    assert apart.spans.equals(forth) and apart.rows.equals(sheet_rows(two, ["k"], [pl.col("v")]).rows)
    # The same rows under another worker's name: the page header shows the owner, so the sheets differ.
    renamed = build_worker_books(calls.with_columns(pl.col("grid_worker").replace("网格员0", "网格员9")), coverage,
                                 workers.with_columns(pl.col("grid_worker").replace("网格员0", "网格员9")),
                                 as_of_text="x")
    named = [b for b in renamed if b.grid_worker == "网格员9"][0]
    assert all(a.equals(b) for a, b in zip(named.sheets.values(), books[0].sheets.values(), strict=True))
    assert set(book_digests([named])[0].sheets[1:]).isdisjoint(digests[0].sheets[1:])


def test_a_part_given_in_pieces_is_stored_as_the_part_given_whole():
    """A sheet's part comes to entry() in pieces (its rows a view of its layout's text): the same size, CRC and
    method as the part joined, and the same bytes once inflated (the deflated stream may be cut otherwise)."""
    import zlib

    from flows.xlsx import entry

    for pieces in ((b"<a>", memoryview(b"<row/>" * 3)[6:], b"</a>"), (b"<a>", memoryview(b"<row>x</row>" * 900), b"</a>")):
        whole, split = entry(b"".join(pieces)), entry(pieces)
        assert (split.size, split.crc, split.method) == (whole.size, whole.crc, whole.method)
        assert split.size == sum(len(p) for p in pieces)
        assert split.crc == zlib.crc32(b"".join(pieces))
        data = zlib.decompress(split.data, -15) if split.method == 8 else split.data
        assert data == b"".join(pieces)
    assert entry((b"<a/>",)).method == 0 and entry((b"<row/>" * 1000,)).method == 8


def test_stored_parts_are_read_alike_from_our_packages_and_from_any_zip(tmp_path):
    """read_entries parses the directory of the packages gridsweep writes itself and leaves any other zip (one
    with a comment, as an editor may save it) to zipfile: the same stored parts either way; a package cut
    short is refused, never half read."""
    import zipfile

    from flows.xlsx import entry, read_entries, zip_package

    parts = [("a.xml", entry("<a/>")), ("xl/worksheets/sheet2.xml", entry("<row>" * 3000)), ("c.xml", entry("c"))]
    ours = tmp_path / "ours.xlsx"
    ours.write_bytes(zip_package(parts, datetime(2022, 5, 20, 18, 0)))
    other = tmp_path / "other.xlsx"
    with zipfile.ZipFile(other, "w", zipfile.ZIP_DEFLATED) as z:
        for name, _ in parts:
            z.writestr(name, zipfile.ZipFile(ours).read(name))
        z.comment = b"saved by an editor"
    wanted = {"xl/worksheets/sheet2.xml", "c.xml", "missing.xml"}
    mine, theirs = read_entries(ours, wanted), read_entries(other, wanted)
    assert set(mine) == set(theirs) == {"xl/worksheets/sheet2.xml", "c.xml"}
    assert mine["xl/worksheets/sheet2.xml"] == parts[1][1] and mine["c.xml"] == parts[2][1]
    for name in mine:  # the same part, whoever compressed it
        assert (mine[name].crc, mine[name].size) == (theirs[name].crc, theirs[name].size)
    whole = ours.read_bytes()
    cut = tmp_path / "cut.xlsx"
    second = whole.index(b"PK\x03\x04", 1)  # the local header of the sheet
    for damaged in (whole[:40] + whole[-200:], whole[:second] + b"XX" + whole[second + 2:]):
        cut.write_bytes(damaged)
        with pytest.raises(zipfile.BadZipFile):
            read_entries(cut, wanted)


def test_a_book_written_again_with_the_last_books_unchanged_sheets_is_the_book_written_fresh(tmp_path):
    """The sheets a book keeps are copied from the last book as stored: the package is the one rendered
    from scratch, and a last book that cannot be read is no reason to fail (the book is rendered whole)."""
    import zipfile

    from flows.workbooks import Keep, write_workbooks
    from transforms.sheets import book_digests

    workers = pl.DataFrame({"street": ["粤海街道"], "community": ["科技园社区"], "grid_id": ["G1"],
                            "grid_worker": ["网格员1"]})
    rows = call_rows().with_columns(pl.lit("G1").alias("grid_id"), pl.lit("网格员1").alias("grid_worker"))
    (old,) = build_worker_books(rows, build_coverage(status_rows()), workers, as_of_text="2022-05-20 18:00")
    first = rows["resident_id"][0]  # an untested resident's phone changes: their sheet changes, the others not
    changed = rows.with_columns(pl.when(pl.col("resident_id") == first).then(pl.lit("13900000009"))
                                .otherwise(pl.col("phone")).alias("phone"))
    (new,) = build_worker_books(changed, build_coverage(status_rows()), workers, as_of_text="2022-05-20 20:00")
    (a,), (b,) = book_digests([old]), book_digests([new])
    same = tuple(i for i, (x, y) in enumerate(zip(a.sheets, b.sheets, strict=True)) if x and x == y)
    assert a.book != b.book and 0 < len(same) < len(a.sheets) - 1
    write_workbooks([(old, tmp_path / "last.xlsx")], workers=1)
    write_workbooks([(new, tmp_path / "kept.xlsx", Keep(tmp_path / "last.xlsx", same)),
                     (new, tmp_path / "fresh.xlsx", None)], workers=1)
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not a zip")
    write_workbooks([(new, tmp_path / "from_broken.xlsx", Keep(tmp_path / "broken.xlsx", same))], workers=1)
    with zipfile.ZipFile(tmp_path / "fresh.xlsx") as fresh:
        for name in ("kept.xlsx", "from_broken.xlsx"):
            with zipfile.ZipFile(tmp_path / name) as z:
                assert z.testzip() is None and z.namelist() == fresh.namelist()
                assert all(z.read(p) == fresh.read(p) for p in z.namelist() if p != "docProps/core.xml"), name
    assert load_workbook(tmp_path / "kept.xlsx")["汇总"]["A1"].value.endswith("工作名单")


def test_a_writers_batch_takes_its_books_rows_in_a_copy_of_its_own():
    """taken_together gives each book the sheets it had, cut from one copy per layout for the batch, so two
    writer threads do not share the city-wide frames' buffers; the books written from either are the same."""
    from transforms.sheet_rows import taken_together

    rows = call_rows()
    workers = pl.DataFrame({"street": ["粤海街道"] * 3, "community": ["科技园社区"] * 3,
                            "grid_id": ["G0", "G1", "G2"], "grid_worker": ["网格员0", "网格员1", "网格员2"]})
    calls = pl.concat([rows.head(5 - i).with_columns(pl.lit(f"G{i}").alias("grid_id"),
                                                     pl.lit(f"网格员{i}").alias("grid_worker")) for i in range(2)])
    books = build_worker_books(calls, build_coverage(status_rows()), workers, as_of_text="2022-05-20 18:00")
    picked = [books[2], books[0]]  # out of order, and one with no rows at all
    copies = taken_together([b.sheets for b in picked])
    for book, sheets in zip(picked, copies, strict=True):
        assert list(sheets) == list(book.sheets)
        for name in book.sheets:
            assert sheets[name].equals(book.sheets[name]) and sheets.height(name) == book.sheets.height(name)
    assert sum(copies[1].height(name) for name in copies[1]) == 5 and taken_together([]) == []
