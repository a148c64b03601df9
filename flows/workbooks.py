"""Rendering a worker's book as an XLSX file that Excel and WPS open: Chinese headers, a dropdown for
the call outcome, header frozen, columns sized, A4 landscape with the header repeated on every page.

Every cell is written as a string: a name beginning with '=' must never become a formula, and an ID
or phone must never become a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import xlsxwriter

from transforms.contract import INPUTS, VERDICTS
from transforms.sheets import (
    EXTRA_FILLABLE,
    FILLABLE,
    OUTCOME_HEADER,
    OUTCOMES,
    SUMMARY_SHEET,
    VERDICT_HEADER,
    CommunityBook,
    WorkerBook,
    column_widths,
)

WORKBOOK_OPTIONS = {
    "strings_to_formulas": False,
    "strings_to_numbers": False,
    "strings_to_urls": False,
    "constant_memory": False,
    # Assemble each part in memory, not in temporary files: a book's fixed cost falls from 16 to 3 ms,
    # which is most of the cost of a district's thousands of small books.
    "in_memory": True,
}


def write_workbook(book: WorkerBook | CommunityBook, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path), WORKBOOK_OPTIONS)
    try:
        head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "vcenter"})
        cell = wb.add_format({"border": 1, "valign": "top", "text_wrap": True})
        fill = wb.add_format({"border": 1, "valign": "top", "bg_color": "#FFF2CC", "locked": False})
        title = wb.add_format({"bold": True, "font_size": 14})
        summary = wb.add_worksheet(SUMMARY_SHEET)
        summary.write_string(0, 0, f"{book.community} {book.grid_worker} 工作名单", title)
        for i, (k, v) in enumerate(book.summary, start=2):
            summary.write_string(i, 0, k, head)
            summary.write_string(i, 1, v, cell)
        summary.set_column(0, 0, 18)
        summary.set_column(1, 1, 40)
        for name, frame in book.sheets.items():
            ws = wb.add_worksheet(name)
            headers = frame.columns
            for j, h in enumerate(headers):
                ws.write_string(0, j, h, head)
            for i, row in enumerate(frame.iter_rows(), start=1):
                for j, (h, v) in enumerate(zip(headers, row, strict=True)):
                    ws.write_string(i, j, v or "", fill if h in FILLABLE or h in EXTRA_FILLABLE else cell)
            for j, w in enumerate(column_widths(headers)):
                ws.set_column(j, j, w)
            last = max(frame.height, 1) + 200  # room for rows a worker adds by hand
            if OUTCOME_HEADER in headers:
                outcome_col = headers.index(OUTCOME_HEADER)
                ws.data_validation(1, outcome_col, last, outcome_col, {
                    "validate": "list", "source": list(OUTCOMES), "error_type": "warning",
                    "input_title": "联系结果", "input_message": "请从下拉列表中选择",
                })
            if VERDICT_HEADER in headers:
                col = headers.index(VERDICT_HEADER)
                ws.data_validation(1, col, last, col, {
                    "validate": "list", "source": list(VERDICTS), "error_type": "warning",
                    "input_title": VERDICT_HEADER, "input_message": "核实后选择：候选记录是否为本人",
                })
            ws.freeze_panes(1, 2)
            ws.autofilter(0, 0, max(frame.height, 1), len(headers) - 1)
            ws.set_landscape()
            ws.set_paper(9)  # A4
            ws.fit_to_pages(1, 0)
            ws.repeat_rows(0)
            ws.set_margins(left=0.3, right=0.3, top=0.5, bottom=0.5)
            ws.set_header(f"&L{book.community} {book.grid_worker}&C{name}&R第 &P 页 / 共 &N 页")
    finally:
        wb.close()


def write_quarantine_workbook(frame, contract, path: Path) -> None:
    """Rows handed back to the data staff: line in their file, the reason in Chinese, the row as it came."""
    zh = {c.name: c.zh for c in contract.columns}
    headers = {"_file": "来源文件", "_line": "行号", "reason": "原因", "expectation": "未通过的检查"} | zh
    cols = [c for c in frame.columns if c in headers]
    wb = xlsxwriter.Workbook(str(path), WORKBOOK_OPTIONS)
    try:
        head = wb.add_format({"bold": True, "bg_color": "#FCE4D6", "border": 1})
        ws = wb.add_worksheet("隔离记录")
        for j, c in enumerate(cols):
            ws.write_string(0, j, headers[c], head)
            ws.set_column(j, j, 40 if c == "reason" else 14)
        for i, row in enumerate(frame.select(cols).iter_rows(), start=1):
            for j, v in enumerate(row):
                ws.write_string(i, j, "" if v is None else str(v))
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(frame.height, 1), max(len(cols) - 1, 0))
    finally:
        wb.close()


@dataclass(frozen=True)
class QuarantineBook:
    """A source's quarantined rows, to be written by write_workbooks with the other books."""

    frame: pl.DataFrame
    source: str  # a key of transforms.contract.INPUTS


def _write_batch(jobs: list[tuple[WorkerBook | CommunityBook | QuarantineBook, Path]]) -> int:
    for book, path in jobs:
        if isinstance(book, QuarantineBook):
            write_quarantine_workbook(book.frame, INPUTS[book.source], path)
        else:
            write_workbook(book, path)
    return len(jobs)


def write_workbooks(jobs: list[tuple[WorkerBook | CommunityBook | QuarantineBook, Path]], workers: int) -> None:
    """xlsxwriter is pure Python, so threads would not help: a few thousand books are split across
    processes (spawned, not forked, since polars holds threads)."""
    if workers <= 1 or len(jobs) < 200:
        _write_batch(jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    batches = [jobs[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in pool.map(_write_batch, batches):
            pass
