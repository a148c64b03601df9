"""What goes on each grid worker's workbook: which rows, in which order, under which Chinese headers.

Rows are ordered building, unit, room (numerically) so a worker sweeping a building walks the list
top to bottom. The workbook writer in flows/ only renders what this module decides.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import polars as pl

from transforms.contract import (
    CALL_LIST,
    CONTACT_OUTCOMES,
    ESCALATION,
    LIST_ZH,
    NOTE_HEADER,
    OUTCOME_HEADER,
    REASON_ZH,
    ROSTER_CORRECTIONS,
    UNREGISTERED,
    VERDICT_HEADER,
)
from transforms.print_sheet import WORKER
from transforms.sheet_rows import SheetRows, books_sheets, sheet_rows

FILLABLE = (OUTCOME_HEADER, NOTE_HEADER)
# Columns other sheets leave blank for a person to fill in (verify rows, the community's sheets).
CHECKED_HEADER = "核实情况"
HANDLED_HEADER = "处理结果"
CORRECTED_HEADER = "更正情况"
EXTRA_FILLABLE = (VERDICT_HEADER, CHECKED_HEADER, HANDLED_HEADER, CORRECTED_HEADER)
AS_OF_LABEL = "数据截至"  # left out of a book's digest: a book unchanged but for the time is not rewritten
OUTCOMES = CONTACT_OUTCOMES

_ZH = {c.name: c.zh for t in (CALL_LIST, UNREGISTERED, ESCALATION, ROSTER_CORRECTIONS) for c in t.columns}
_WIDTH = {c.name: c.width for t in (CALL_LIST, UNREGISTERED, ESCALATION, ROSTER_CORRECTIONS) for c in t.columns}
# Per sheet: which call-list rows, and which columns in which order.
_PEOPLE = ["name", "phone", "address", "building", "unit", "room", "grid_id", "id_masked", "tags", "new_since_last"]
SHEETS: dict[str, tuple[pl.Expr, list[str]]] = {
    LIST_ZH["call"]: ((pl.col("list") == "call") & (pl.col("reason") == "untested"), [*_PEOPLE, "detail", "resident_id"]),
    LIST_ZH["home_visit"]: (
        (pl.col("list") == "home_visit") & (pl.col("reason") == "untested"), [*_PEOPLE, "detail", "resident_id"]
    ),
    LIST_ZH["verify"]: (pl.col("list") == "verify", [*_PEOPLE, "reason_zh", "detail", "resident_id", "candidate_record"]),
    "疫苗接种": (
        (pl.col("reason") != "untested") & (pl.col("list") != "verify"), [*_PEOPLE, "reason_zh", "detail", "resident_id"]
    ),
}
SUMMARY_SHEET = "汇总"
UNREGISTERED_SHEET = "待登记人员"
ESCALATION_SHEET = "升级处理"
CORRECTIONS_SHEET = "登记更正"
_UNREGISTERED_COLS = [c for c in UNREGISTERED.names if c not in ("street", "community", "grid_worker")]


@dataclass(frozen=True)
class SheetColumn:
    header: str
    width: int


@dataclass(frozen=True)
class CommunityBook:
    """For the community secretary: who is escalated, who may be unregistered, which roster rows to fix."""

    street: str
    community: str
    sheets: Mapping[str, pl.DataFrame]
    summary: list[tuple[str, str]]
    digests: tuple[str, ...]  # each sheet's, as transforms.sheet_rows.books_sheets makes them
    grid_worker: str = "社区汇总"

    @property
    def file_name(self) -> str:
        return safe_file_name(f"{self.community}_社区工作簿") + ".xlsx"


@dataclass(frozen=True)
class WorkerBook:
    street: str
    community: str
    grid_worker: str
    grid_ids: tuple[str, ...]
    # sheet name -> rows, Chinese headers, '序号' first, fillable columns last (cut when asked: SlicedSheets)
    sheets: Mapping[str, pl.DataFrame]
    summary: list[tuple[str, str]]
    digests: tuple[str, ...]  # each sheet's, as transforms.sheet_rows.books_sheets makes them

    @property
    def file_name(self) -> str:
        return safe_file_name(f"{self.grid_worker}_{'_'.join(self.grid_ids)}") + ".xlsx"


class BookDigest(NamedTuple):
    """What a book shows but its time (book), and what each of its sheets shows (sheets, by the sheet's index
    in the workbook; the summary, first, is made anew every time and has none)."""

    book: str
    sheets: tuple[str, ...]


def book_digests(books: list[WorkerBook | CommunityBook]) -> list[BookDigest]:
    """Per book, digests that change whenever anything the workbook, or one of its sheets, shows changes,
    except the time it was made: a book with the same digest as last time is not written again (its rows are
    what a fresh one would hold), so a two-hourly refresh rewrites only the grids where something happened,
    and in a book written again a sheet with the same digest is copied from the last one. The sheets' digests
    were made with the sheets (transforms.sheet_rows), for all books at once."""
    digests = []
    for book in books:
        whole = hashlib.sha256(repr([item for item in book.summary if item[0] != AS_OF_LABEL]).encode())
        whole.update("|".join(book.digests).encode())
        digests.append(BookDigest(whole.hexdigest(), ("", *book.digests)))
    return digests


def safe_file_name(text: str) -> str:
    return re.sub(r'[\\/:*?"<>|\s]+', "_", text).strip("._")[:120] or "未命名"


def column_widths(headers: list[str]) -> list[int]:
    by_zh = {v: _WIDTH[k] for k, v in _ZH.items()}
    return [by_zh.get(h, 14 if h in FILLABLE or h == VERDICT_HEADER else 10) for h in headers]


WALK_COLUMNS = ("grid_id", "building", "unit", "room", "resident_id")  # what walk_order sorts by


def walk_order(frame: pl.DataFrame, first: tuple[str, ...] | list[str] = ()) -> pl.DataFrame:
    """Grid, building, unit, room: the order a worker walks. first: columns sorted by before (a worker's
    rows together, each worker's in walking order, as a stable split of the walk by worker gives them)."""
    as_num = lambda c: pl.col(c).cast(pl.Int64, strict=False)  # noqa: E731
    return frame.sort(
        [*(pl.col(c) for c in first), pl.col("grid_id"), as_num("building"), pl.col("building"), as_num("unit"),
         as_num("room"), pl.col("room"), pl.col("resident_id")],
        nulls_last=True, maintain_order=True,
    )


def walk_positions(rows: pl.DataFrame) -> pl.Series:
    """The rows' positions by worker (street, community, grid_worker), each worker's rows in walking order:
    the call list sorted once for the workers' sheets and their printable pages (sorting it for each took 3 s
    apiece at 20M residents), as positions, not as a sorted copy held beside it."""
    return walk_order(rows.select(*WORKER, *WALK_COLUMNS).with_row_index("_at"), first=WORKER)["_at"]


def _sheet_rows(rows: pl.DataFrame, by: list[str], cols: list[str], fillable: tuple[str, ...]) -> SheetRows:
    """One sheet per `by` key: Chinese headers, 序号 from 1 within each, fillable columns blank, all text.
    Done once for all keys: a district has thousands of workers, and a per-worker pass costs seconds."""
    return sheet_rows(rows, by, [*[pl.col(c).alias(_ZH.get(c, "原因" if c == "reason_zh" else c)) for c in cols],
                                 *[pl.lit("").alias(h) for h in fillable]])


def build_community_books(escalation: pl.DataFrame, unregistered: pl.DataFrame, corrections: pl.DataFrame,
                          communities: pl.DataFrame, *, as_of_text: str) -> list[CommunityBook]:
    """One book per community on the roster (communities: street, community), even when all is clear."""
    books = []
    place = ["street", "community"]
    tables = {ESCALATION_SHEET: (escalation, ESCALATION, (HANDLED_HEADER, NOTE_HEADER)),
              UNREGISTERED_SHEET: (unregistered, UNREGISTERED, (CHECKED_HEADER, NOTE_HEADER)),
              CORRECTIONS_SHEET: (corrections, ROSTER_CORRECTIONS, (CORRECTED_HEADER,))}
    # Every community's sheets of a table in one pass (sheets made one community at a time took 30 s for a
    # 20M city's 11,070 communities); a community without rows gets the sheet's header alone.
    layouts = {name: _sheet_rows(rows, place, [c for c in contract.names if c not in place], fillable)
               for name, (rows, contract, fillable) in tables.items()}
    owners = communities.select(pl.col(place).cast(pl.String)).unique().sort(place)
    for (street, community), (sheets, digests) in zip(owners.iter_rows(), books_sheets(owners, layouts), strict=True):
        esc, unr, cor = (sheets.height(n) for n in tables)
        summary = [("街道", street), ("社区", community), (AS_OF_LABEL, as_of_text),
                   ("需升级处理（人）", str(esc)), ("疑似未登记人员（条）", str(unr)),
                   ("需更正登记（条）", str(cor))]
        books.append(CommunityBook(street, community, sheets, summary, digests))
    return books


def build_worker_books(
    call_list: pl.DataFrame, coverage: pl.DataFrame, grid_workers: pl.DataFrame, *, as_of_text: str,
    unregistered: pl.DataFrame | None = None, walk: pl.Series | None = None,
) -> list[WorkerBook]:
    """One book per (street, community, grid worker), including workers with nobody left to call.

    grid_workers: street, community, grid_id, grid_worker as the roster assigns them; walk: walk_positions of
    the call list, if the caller has them."""
    cl = call_list.with_columns(
        pl.col("reason").replace_strict(REASON_ZH, default="").alias("reason_zh"),
    )
    grids = coverage.filter(pl.col("level") == "grid")
    workers = grid_workers.select("street", "community", "grid_worker", "grid_id").unique().sort(
        "street", "community", "grid_worker", "grid_id"
    )
    books: list[WorkerBook] = []
    keys = WORKER
    walk = walk_positions(cl) if walk is None else walk
    layouts = {}
    for sheet, (pred, cols) in SHEETS.items():
        fillable = (VERDICT_HEADER, *FILLABLE) if sheet == LIST_ZH["verify"] else FILLABLE
        # Each sheet's rows taken in the walk's order, each worker's together (the rows a sort of the chosen
        # rows would give: the sort is stable): a walk-ordered copy of the whole list was the stage's peak.
        chosen = walk.filter(cl.select(pred).to_series().gather(walk))
        layouts[sheet] = _sheet_rows(cl.select(pl.col(*keys, *cols).gather(chosen)), keys, cols, fillable)
    new_rows = {(a, b, c): n for a, b, c, n in
                cl.filter(pl.col("new_since_last") == "是").group_by(keys).len().iter_rows()}
    if unregistered is not None:  # a worker's grids' rows, in the order of the table
        mine = unregistered.drop("grid_worker", strict=False).join(
            workers, on=["street", "community", "grid_id"], how="inner", maintain_order="left")
        layouts[UNREGISTERED_SHEET] = _sheet_rows(mine, keys, _UNREGISTERED_COLS, (CHECKED_HEADER, NOTE_HEADER))
    # Each worker's figures from their grids' coverage rows, for every worker in one query.
    figures = {
        (a, b, c): (residents, in_scope, tested) for a, b, c, residents, in_scope, tested in
        workers.join(grids, on=["street", "community", "grid_id"], how="inner").group_by(keys).agg(
            pl.col("residents", "in_scope", "tested").sum().cast(pl.Int64)).iter_rows()
    }
    owners = workers.group_by(keys, maintain_order=True).agg(pl.col("grid_id").sort())
    for (street, community, worker, grid_ids), (sheets, digests) in zip(
            owners.iter_rows(), books_sheets(owners.select(pl.col(keys).cast(pl.String)), layouts), strict=True):
        grid_ids, key = tuple(grid_ids), (street, community, worker)
        residents, in_scope, tested = figures.get(key, (0, 0, 0))
        summary = [
            ("街道", str(street)), ("社区", str(community)), ("网格员", str(worker)), ("网格", "、".join(grid_ids)),
            (AS_OF_LABEL, as_of_text), ("在册人数", str(residents)), ("在住人数", str(in_scope)),
            ("本轮已检测", str(tested)), ("本轮未检测", str(in_scope - tested)),
            ("检测覆盖率", f"{tested / in_scope:.1%}" if in_scope else "—"),
        ] + [(f"{name}（人）", str(sheets.height(name))) for name in sheets] + [
            ("较上次刷新新增（条）", str(new_rows.get(key, 0))),
        ]
        books.append(WorkerBook(str(street), str(community), str(worker), grid_ids, sheets, summary, digests))
    return books
