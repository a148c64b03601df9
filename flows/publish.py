"""Writing a run's outputs: everything goes into a staging folder beside --out, and only a complete
set replaces the previous one. A failed run leaves the last good outputs exactly where they were."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from expectations.docs import export_offline
from expectations.suites import SuiteResult
from flows.meter import StageMeter
from flows.workbooks import QuarantineBook, write_workbooks
from transforms.report import chart_bars
from transforms.sheets import CommunityBook, WorkerBook, book_digest, safe_file_name

if TYPE_CHECKING:
    from flows.refresh import RunReport


def _csv(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> None:
    # UTF-8 with a BOM: Excel and WPS then show the Chinese text without an import dialog. A scan (a city's
    # decisions on disk) is streamed to the file, never held whole.
    if isinstance(frame, pl.LazyFrame):
        frame.sink_csv(path, include_bom=True)
    else:
        frame.write_csv(path, include_bom=True)


def recover_interrupted_swap(out: Path) -> None:
    """If a run died between moving the old outputs aside and moving the new ones in, put the old back."""
    if out.exists():
        return
    previous = sorted(out.parent.glob(f".{out.name}.previous-*"))
    if previous:
        previous[-1].rename(out)


@dataclass
class RunOutputs:
    """Everything one run publishes, decided before anything is written."""

    call_list: pl.DataFrame
    coverage: pl.DataFrame
    matches: pl.DataFrame | pl.LazyFrame  # a scan of the decisions on disk in a refresh
    quarantine: dict[str, pl.DataFrame]
    books: list[WorkerBook]
    community_books: list[CommunityBook] = field(default_factory=list)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # escalation, unregistered, roster_corrections
    report_html: str | None = None
    # (street, community, file name), page: rendered one at a time as they are written
    print_pages: Iterable[tuple[tuple[str, str, str], str]] = ()
    data_docs: tuple[Path, dict[str, SuiteResult]] | None = None


def publish_outputs(out: Path, outputs: RunOutputs, report: RunReport, started: float,
                    meter: StageMeter | None = None) -> None:
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(out)
    staging = out.parent / f".{out.name}.staging-{report.run_id}"
    t = time.perf_counter()
    laps: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        laps[name] = round(time.perf_counter() - since, 3)
        return time.perf_counter()

    try:
        staging.mkdir()
        s = time.perf_counter()
        _csv(outputs.call_list, staging / "call_list.csv")
        _csv(outputs.coverage, staging / "coverage.csv")
        _csv(outputs.matches, staging / "matches.csv")
        for name, frame in outputs.tables.items():
            _csv(frame, staging / f"{name}.csv")
        s = lap("write_csv", s)
        (staging / "quarantine").mkdir()
        quarantine_books = []  # written with the other books, in parallel
        for name, frame in outputs.quarantine.items():
            _csv(frame.rename({"_line": "line"}), staging / "quarantine" / f"{name}.csv")
            quarantine_books.append((QuarantineBook(frame, name), staging / "quarantine" / f"{name}.xlsx"))
        s = lap("write_quarantine_csv", s)
        if outputs.data_docs is not None:
            export_offline(outputs.data_docs[0], staging / "data_docs", outputs.data_docs[1])
        s = lap("write_data_docs", s)
        for (street, community, file_name), page in outputs.print_pages:
            target = staging / "print" / safe_file_name(street) / safe_file_name(community) / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(page, encoding="utf-8")
        s = lap("write_print_pages", s)
        if outputs.report_html is not None:
            _write_report(staging, outputs.report_html, outputs.coverage, report)
        s = lap("write_report", s)
        jobs = [
            (book, staging / "sheets" / safe_file_name(book.street) / safe_file_name(book.community) / book.file_name)
            for book in outputs.books
        ] + [
            (book, staging / "community" / safe_file_name(book.street) / book.file_name)
            for book in outputs.community_books
        ]
        write_workbooks(quarantine_books + _reuse_unchanged(out, staging, jobs, report), workers=os.cpu_count() or 1)
        lap("write_workbooks", s)
        report.timings["write"] = round(time.perf_counter() - t, 3)
        report.timings.update(laps)
        if meter is not None:
            report.peak_memory_gib["write"] = meter.mark("write")
        report.timings["total"] = round(time.perf_counter() - started, 3)
        report.lists["workbooks"] = len(outputs.books)
        report.lists["community_workbooks"] = len(outputs.community_books)
        (staging / "run.json").write_text(
            json.dumps(asdict(report), ensure_ascii=False, indent=2, default=str), encoding="utf-8"
        )
        _swap(staging, out, report.run_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


MANIFEST = "books.json"


def _reuse_unchanged(out: Path, staging: Path, jobs: list, report: RunReport) -> list:
    """A book whose content digest equals last run's is hard-linked from the previous output instead of
    being written again; returns the books still to write. The manifest maps each book to its digest."""
    previous = {}
    if (out / MANIFEST).exists():
        previous = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    manifest, todo, reused = {}, [], 0
    for book, target in jobs:
        rel = target.relative_to(staging).as_posix()
        digest = manifest[rel] = book_digest(book)
        old = out / rel
        if previous.get(rel) == digest and old.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(old, target)
            except OSError:
                shutil.copy2(old, target)
            reused += 1
        else:
            todo.append((book, target))
    (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=0), encoding="utf-8")
    report.lists["workbooks_written"], report.lists["workbooks_reused"] = len(todo), reused
    return todo


def _write_report(staging: Path, page: str, coverage: pl.DataFrame, report: RunReport) -> None:
    """report.html, and report.png of its top (the charts) for the group chat, if Chromium is here."""
    from flows.browser import chromium, screenshot

    path = staging / "report.html"
    path.write_text(page, encoding="utf-8")
    if chromium() is None:
        report.lists["report_png"] = "skipped: Chromium not installed"
        return
    screenshot(path, staging / "report.png", height=min(4000, 640 + 24 * chart_bars(coverage)))
    report.lists["report_png"] = "report.png"


def _swap(staging: Path, out: Path, run_id: str) -> None:
    previous = out.parent / f".{out.name}.previous-{run_id}"
    if out.exists():
        out.rename(previous)
    try:
        staging.rename(out)
    except BaseException:
        if previous.exists() and not out.exists():
            previous.rename(out)
        raise
    shutil.rmtree(previous, ignore_errors=True)
