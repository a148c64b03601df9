"""Loading returned call sheets: every filled-in 联系结果 becomes a recorded call attempt, and the verify
rows a grid worker settled become confirmed or rejected pairs; the next refresh obeys both. Workbooks
saved by Excel or WPS are read by header, not by position, so re-sorted sheets and added rows are fine;
a file loaded twice (same content) records its attempts once."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from flows.database import Database
from flows.readers import InputError, file_hash
from flows.settings import DuckDBSettings
from transforms.feedback import FEEDBACK_COLUMNS, verdicts_from_sheet
from transforms.outcomes import ATTEMPT_COLUMNS, attempts_from_sheet
from transforms.sheets import SUMMARY_SHEET


def _sheets(path: Path) -> list[tuple[str, pl.DataFrame]]:
    if path.suffix.lower() == ".csv":
        return [("csv", pl.read_csv(path, infer_schema=False, encoding="utf8-lossy"))]
    if path.suffix.lower() != ".xlsx":
        raise InputError(path, "a returned call sheet must be the .xlsx workbook (or a .csv with the same headers)")
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise InputError(path, f"not a readable XLSX workbook ({type(exc).__name__})") from exc
    frames = []
    try:
        for ws in wb.worksheets:
            rows = list(ws.iter_rows(values_only=True))
            if not rows or rows[0] is None:
                continue
            header = [str(h).strip() if h is not None else f"_col{i}" for i, h in enumerate(rows[0])]
            body = [["" if v is None else str(v) for v in r] + [""] * (len(header) - len(r)) for r in rows[1:]]
            frames.append((ws.title, pl.DataFrame([r[: len(header)] for r in body], schema=header, orient="row")
                           if body else pl.DataFrame(schema={h: pl.String for h in header})))
    finally:
        wb.close()
    return frames


def _grid_worker(sheets: list[tuple[str, pl.DataFrame]], path: Path) -> str:
    """The worker named on the book's 汇总 sheet (label in the first column), else the file name."""
    for name, frame in sheets:
        if name == SUMMARY_SHEET and frame.width >= 2:
            for label, value in frame.select(frame.columns[:2]).iter_rows():
                if label == "网格员" and value:
                    return str(value)
    return path.stem.split("_")[0]


def read_returned(paths: list[Path]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(verdicts, attempts) from returned books; attempts carry the file's content hash."""
    verdicts, attempts = [], []
    for path in paths:
        sheets = _sheets(path)
        digest = file_hash(path)
        worker = _grid_worker(sheets, path)
        for name, sheet in sheets:
            verdicts.append(verdicts_from_sheet(sheet, path.name))
            attempts.append(attempts_from_sheet(sheet, sheet_name=name, grid_worker=worker, source=path.name)
                            .with_columns(pl.lit(digest).alias("file_hash")))
    v = (pl.concat(verdicts).unique(["record_kind", "record_id", "resident_id"], keep="last", maintain_order=True)
         if verdicts else pl.DataFrame(schema={c: pl.String for c in FEEDBACK_COLUMNS}))
    a = (pl.concat(attempts) if attempts
         else pl.DataFrame(schema={c: pl.String for c in [*ATTEMPT_COLUMNS, "file_hash"]}))
    return v, a


def store_returned(db: Database, paths: list[Path]) -> dict[str, int]:
    """Reads every file first (a bad one raises InputError before anything is stored), then stores."""
    verdicts, attempts = read_returned(paths)
    db.store_feedback(verdicts)
    new_attempts = db.store_attempts(attempts)
    return {
        "files": len(paths),
        "confirmed": int((verdicts["verdict"] == "confirmed").sum()),
        "rejected": int((verdicts["verdict"] == "rejected").sum()),
        "stored_in_total": db.feedback().height,
        "call_attempts": attempts.height,
        "new_call_attempts": new_attempts,
    }


def load_feedback(paths: list[Path], duck: DuckDBSettings) -> dict[str, int]:
    db = Database(duck)
    try:
        return store_returned(db, paths)
    finally:
        db.close()
