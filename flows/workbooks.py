"""Rendering a worker's book as an XLSX file that Excel and WPS open: Chinese headers, a dropdown for
the call outcome, header frozen, columns sized, A4 landscape with the header repeated on every page.

Every cell is written as a string (flows.xlsx): a name beginning with '=' must never become a formula,
and an ID or phone must never become a number.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from flows.xlsx import Entry, Sheet, Validation, read_entries, render_rows, sheet_part, write_xlsx
from transforms.contract import INPUTS, VERDICTS
from transforms.sheet_rows import SlicedSheets, taken_together
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


@functools.lru_cache(maxsize=256)
def _layout(headers: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[float, ...], tuple[tuple[int, tuple, str, str], ...]]:
    """A list sheet's cell styles, column widths and dropdowns (column, choices, title, prompt), the same for
    every sheet with these headers: made once, not for each of a city's 385,000 sheets."""
    dropdowns = []
    if OUTCOME_HEADER in headers:
        dropdowns.append((headers.index(OUTCOME_HEADER), tuple(OUTCOMES), "联系结果", "请从下拉列表中选择"))
    if VERDICT_HEADER in headers:
        dropdowns.append((headers.index(VERDICT_HEADER), tuple(VERDICTS), VERDICT_HEADER, "核实后选择：候选记录是否为本人"))
    styles = tuple("fill" if h in FILLABLE or h in EXTRA_FILLABLE else "cell" for h in headers)
    return styles, tuple(column_widths(list(headers))), tuple(dropdowns)


def book_sheets(book: WorkerBook | CommunityBook) -> list[Sheet]:
    summary = Sheet(SUMMARY_SHEET, cells=[(0, 0, f"{book.community} {book.grid_worker} 工作名单", "title")],
                    widths=[18, 40])
    for i, (k, v) in enumerate(book.summary, start=2):
        summary.cells += [(i, 0, k, "head"), (i, 1, v, "cell")]
    sheets = [summary]
    for name, frame in book.sheets.items():
        styles, widths, dropdowns = _layout(tuple(frame.columns))
        last = max(frame.height, 1) + 201  # room for rows a worker adds by hand
        sheets.append(Sheet(
            name, frame=frame, styles=list(styles), widths=list(widths), freeze=(1, 2), autofilter=True,
            validations=[Validation(column, last, choices, title, prompt) for column, choices, title, prompt in dropdowns],
            landscape_a4=True, page_header=f"&L{book.community} {book.grid_worker}&C{name}&R第 &P 页 / 共 &N 页",
        ))
    return sheets


def write_workbook(book: WorkerBook | CommunityBook, path: Path) -> None:
    write_xlsx(path, book_sheets(book))


def quarantine_sheets(frame: pl.DataFrame, contract) -> list[Sheet]:
    """Rows handed back to the data staff: line in their file, the reason in Chinese, the row as it came."""
    zh = {c.name: c.zh for c in contract.columns}
    headers = {"_file": "来源文件", "_line": "行号", "reason": "原因", "expectation": "未通过的检查"} | zh
    cols = [c for c in frame.columns if c in headers]
    rows = frame.select(pl.col(c).cast(pl.String).alias(headers[c]) for c in cols)
    return [Sheet("隔离记录", frame=rows, styles=["default"] * len(cols), header_style="quarantine_head",
                  widths=[40 if c == "reason" else 14 for c in cols], freeze=(1, 0), autofilter=True)]


def write_quarantine_workbook(frame: pl.DataFrame, contract, path: Path) -> None:
    write_xlsx(path, quarantine_sheets(frame, contract))


@dataclass(frozen=True)
class QuarantineBook:
    """A source's quarantined rows, to be written by write_workbooks with the other books."""

    frame: pl.DataFrame
    source: str  # a key of transforms.contract.INPUTS


@dataclass(frozen=True)
class Keep:
    """Sheets (by index in the book) to take as the last book at `path` stored them: what they show is the same."""

    path: Path
    sheets: tuple[int, ...]


Job = tuple[WorkerBook | CommunityBook | QuarantineBook, Path] | tuple[WorkerBook | CommunityBook, Path, Keep | None]


def _kept_entries(keep: Keep | None) -> dict[int, Entry]:
    """The kept sheets as stored; none if the last book cannot be read (it is then rendered whole)."""
    if keep is None:
        return {}
    try:
        stored = read_entries(keep.path, {sheet_part(i) for i in keep.sheets})
    except (OSError, zipfile.BadZipFile):
        return {}
    return {i: stored[sheet_part(i)] for i in keep.sheets} if len(stored) == len(keep.sheets) else {}


def _own_copies(jobs: list[Job]) -> list[Job]:
    """The batch's books with each sheet layout's rows in a copy of the batch's own (taken_together)."""
    layouts: dict[tuple[str, ...], list[int]] = {}
    for i, (book, *_) in enumerate(jobs):
        if isinstance(getattr(book, "sheets", None), SlicedSheets):
            layouts.setdefault(tuple(book.sheets), []).append(i)
    jobs = list(jobs)
    for at in layouts.values():
        for i, sheets in zip(at, taken_together([jobs[i][0].sheets for i in at]), strict=True):
            jobs[i] = (replace(jobs[i][0], sheets=sheets), *jobs[i][1:])
    return jobs


def _write_batch(jobs: list[Job]) -> int:
    return _write_owned(_own_copies(jobs))


def _write_owned(jobs: list[Job]) -> int:
    """A batch's books, each layout's rows in the batch's own copy (_own_copies): what a helper process is sent."""
    books = []
    for book, path, *rest in jobs:
        sheets = quarantine_sheets(book.frame, INPUTS[book.source]) if isinstance(book, QuarantineBook) else book_sheets(book)
        kept = _kept_entries(rest[0] if rest else None)
        for i in kept:
            sheets[i].rows_xml = b""  # not rendered: the stored sheet is used
        books.append((sheets, path, kept))
    render_rows([sheet for sheets, _, _ in books for sheet in sheets])  # all books' rows in a few queries
    for sheets, path, kept in books:
        write_xlsx(path, sheets, kept=kept)
    return len(jobs)


# Books rendered together: a batch's rows are rendered by one query per sheet layout (a query costs about 2 ms
# however small), and held as XML until the batch is zipped. A fixed number, not a fixed share of the city:
# an eighth of 5M residents' books held 2.5 GiB of rendered rows at the end of the run.
BOOKS_PER_BATCH = 200
# From this many batches on, all but one of the writers are helper processes: a helper takes 0.11 s to start
# from the running fork server (seconds more if the server must start) and its batches' rows are pickled to it,
# which a few hundred books do not pay back.
HELPERS_FROM_BATCHES = 4


def write_workbooks(jobs: list[Job], workers: int) -> None:
    """Rendering (polars) and compressing (ISA-L) let go of the GIL, but making each book's sheets and package
    is Python: on two cores two threads wrote the 3,321 books of a 1M city in 7.0-7.7 s against 8.1-8.3 on
    one, with the GIL held for most of it. So one thread writes here and each other writer is a process of its
    own (from multiprocessing's fork server, flows.loading: never a fork of this process's threads), sent one
    batch at a time, its rows in the batch's copy: 5.9-6.2 s. What is pickled is a batch's copy, never the
    city-wide frames, so memory grows by a batch or two, not by the largest frames (why the books were written
    by threads alone before). Batches are handed out as writers come free."""
    batches = [jobs[i:i + BOOKS_PER_BATCH] for i in range(0, len(jobs), BOOKS_PER_BATCH)]
    if workers <= 1 or len(batches) < 2:
        for batch in batches:
            _write_batch(batch)
        return
    helpers = workers - 1 if len(batches) >= HELPERS_FROM_BATCHES else 0
    queue, lock, failed = iter(batches), threading.Lock(), threading.Event()

    def take() -> list[Job] | None:
        with lock:
            return None if failed.is_set() else next(queue, None)

    def writer(send: Callable[[list[Job]], object]) -> None:
        try:
            while (batch := take()) is not None:
                send(batch)
        except BaseException:
            failed.set()  # the other writers stop at their next batch
            raise

    with contextlib.ExitStack() as stack:
        sends: list[Callable[[list[Job]], object]] = [_write_batch] * (workers - helpers)
        if helpers:
            pool = stack.enter_context(ProcessPoolExecutor(
                max_workers=helpers, mp_context=multiprocessing.get_context("forkserver")))
            sends += [lambda batch: pool.submit(_write_owned, _own_copies(batch)).result()] * helpers
        threads = stack.enter_context(ThreadPoolExecutor(max_workers=len(sends), thread_name_prefix="books"))
        try:
            for done in [threads.submit(writer, send) for send in sends]:
                done.result()
        except BrokenProcessPool as exc:
            raise RuntimeError("a process writing the workbooks ended before it was done (killed, or out of "
                               "memory?); nothing was published") from exc
