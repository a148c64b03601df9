"""Writing a run's outputs: everything goes into a staging folder beside --out, and only a complete
set replaces the previous one. A failed run leaves the last good outputs exactly where they were."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from expectations.docs import export_offline
from expectations.suites import SuiteResult
from flows.workbooks import write_quarantine_workbook, write_workbooks
from transforms.contract import INPUTS
from transforms.sheets import WorkerBook, safe_file_name

if TYPE_CHECKING:
    from flows.refresh import RunReport


def _csv(frame: pl.DataFrame, path: Path) -> None:
    # UTF-8 with a BOM: Excel and WPS then show the Chinese text without an import dialog.
    frame.write_csv(path, include_bom=True)


def recover_interrupted_swap(out: Path) -> None:
    """If a run died between moving the old outputs aside and moving the new ones in, put the old back."""
    if out.exists():
        return
    previous = sorted(out.parent.glob(f".{out.name}.previous-*"))
    if previous:
        previous[-1].rename(out)


def publish_outputs(
    out: Path,
    *,
    call_list: pl.DataFrame,
    coverage: pl.DataFrame,
    matches: pl.DataFrame,
    quarantine: dict[str, pl.DataFrame],
    books: list[WorkerBook],
    report: RunReport,
    started: float,
    data_docs: tuple[Path, dict[str, SuiteResult]] | None = None,
) -> None:
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(out)
    staging = out.parent / f".{out.name}.staging-{report.run_id}"
    t = time.perf_counter()
    try:
        staging.mkdir()
        _csv(call_list, staging / "call_list.csv")
        _csv(coverage, staging / "coverage.csv")
        _csv(matches, staging / "matches.csv")
        (staging / "quarantine").mkdir()
        for name, frame in quarantine.items():
            _csv(frame.rename({"_line": "line"}), staging / "quarantine" / f"{name}.csv")
            write_quarantine_workbook(frame, INPUTS[name], staging / "quarantine" / f"{name}.xlsx")
        if data_docs is not None:
            export_offline(data_docs[0], staging / "data_docs", data_docs[1])
        jobs = [
            (book, staging / "sheets" / safe_file_name(book.street) / safe_file_name(book.community) / book.file_name)
            for book in books
        ]
        write_workbooks(jobs, workers=os.cpu_count() or 1)
        report.timings["write"] = round(time.perf_counter() - t, 3)
        report.timings["total"] = round(time.perf_counter() - started, 3)
        report.lists["workbooks"] = len(books)
        (staging / "run.json").write_text(
            json.dumps(asdict(report), ensure_ascii=False, indent=2, default=str), encoding="utf-8"
        )
        _swap(staging, out, report.run_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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
