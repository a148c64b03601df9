"""Loading returned call sheets: the verify rows a grid worker settled become confirmed or rejected pairs
in the database, which the next refresh obeys. Workbooks saved by Excel or WPS are read by header, not
by position, so re-sorted sheets and added rows are fine."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from flows.database import Database
from flows.readers import InputError
from flows.settings import DuckDBSettings
from transforms.feedback import FEEDBACK_COLUMNS, verdicts_from_sheet


def _sheets(path: Path) -> list[pl.DataFrame]:
    if path.suffix.lower() == ".csv":
        return [pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")]
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
            frames.append(pl.DataFrame([r[: len(header)] for r in body], schema=header, orient="row")
                          if body else pl.DataFrame(schema={h: pl.String for h in header}))
    finally:
        wb.close()
    return frames


def read_returned(paths: list[Path]) -> pl.DataFrame:
    parts = [verdicts_from_sheet(sheet, path.name) for path in paths for sheet in _sheets(path)]
    if not parts:
        return pl.DataFrame(schema={c: pl.String for c in FEEDBACK_COLUMNS})
    return pl.concat(parts).unique(["record_kind", "record_id", "resident_id"], keep="last", maintain_order=True)


def load_feedback(paths: list[Path], duck: DuckDBSettings) -> dict[str, int]:
    verdicts = read_returned(paths)
    db = Database(duck)
    try:
        db.store_feedback(verdicts)
        total = db.feedback()
    finally:
        db.close()
    return {
        "files": len(paths),
        "confirmed": int((verdicts["verdict"] == "confirmed").sum()),
        "rejected": int((verdicts["verdict"] == "rejected").sum()),
        "stored_in_total": total.height,
    }
