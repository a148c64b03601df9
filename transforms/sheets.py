"""What goes on each grid worker's workbook: which rows, in which order, under which Chinese headers.

Rows are ordered building, unit, room (numerically) so a worker sweeping a building walks the list
top to bottom. The workbook writer in flows/ only renders what this module decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from transforms.contract import CALL_LIST, CONTACT_OUTCOMES, LIST_ZH, REASON_ZH

OUTCOME_HEADER = "联系结果"
NOTE_HEADER = "备注"
VERDICT_HEADER = "核实结论"  # verify sheet only: 是本人 / 不是本人
FILLABLE = (OUTCOME_HEADER, NOTE_HEADER)
OUTCOMES = CONTACT_OUTCOMES

_ZH = {c.name: c.zh for c in CALL_LIST.columns}
_WIDTH = {c.name: c.width for c in CALL_LIST.columns}
# Per sheet: which call-list rows, and which columns in which order.
_PEOPLE = ["name", "phone", "address", "building", "unit", "room", "grid_id", "id_masked", "tags"]
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


@dataclass(frozen=True)
class SheetColumn:
    header: str
    width: int


@dataclass(frozen=True)
class WorkerBook:
    street: str
    community: str
    grid_worker: str
    grid_ids: tuple[str, ...]
    sheets: dict[str, pl.DataFrame]  # sheet name -> rows, Chinese headers, '序号' first, fillable columns last
    summary: list[tuple[str, str]]

    @property
    def file_name(self) -> str:
        return safe_file_name(f"{self.grid_worker}_{'_'.join(self.grid_ids)}") + ".xlsx"


def safe_file_name(text: str) -> str:
    return re.sub(r'[\\/:*?"<>|\s]+', "_", text).strip("._")[:120] or "未命名"


def column_widths(headers: list[str]) -> list[int]:
    by_zh = {v: _WIDTH[k] for k, v in _ZH.items()}
    return [by_zh.get(h, 14 if h in FILLABLE or h == VERDICT_HEADER else 10) for h in headers]


def _walk_order(frame: pl.DataFrame) -> pl.DataFrame:
    as_num = lambda c: pl.col(c).cast(pl.Int64, strict=False)  # noqa: E731
    return frame.sort(
        [pl.col("grid_id"), as_num("building"), pl.col("building"), as_num("unit"), as_num("room"), pl.col("room"),
         pl.col("resident_id")],
        nulls_last=True,
    )


def build_worker_books(
    call_list: pl.DataFrame, coverage: pl.DataFrame, grid_workers: pl.DataFrame, *, as_of_text: str
) -> list[WorkerBook]:
    """One book per (street, community, grid worker), including workers with nobody left to call.

    grid_workers: street, community, grid_id, grid_worker as the roster assigns them."""
    cl = call_list.with_columns(
        pl.col("reason").replace_strict(REASON_ZH, default="").alias("reason_zh"),
    )
    grids = coverage.filter(pl.col("level") == "grid")
    workers = grid_workers.select("street", "community", "grid_worker", "grid_id").unique().sort(
        "street", "community", "grid_worker", "grid_id"
    )
    books: list[WorkerBook] = []
    keys = ["street", "community", "grid_worker"]
    # Split once, not once per worker: a district has thousands of workers.
    by_worker = cl.partition_by(keys, as_dict=True, maintain_order=True)
    empty = cl.clear()
    grid_by_id = {
        k: v for k, v in grids.partition_by(["street", "community", "grid_id"], as_dict=True).items()
    }
    for (street, community, worker), grid_rows in workers.group_by(keys, maintain_order=True):
        grid_ids = tuple(sorted(grid_rows["grid_id"].to_list()))
        mine = by_worker.get((street, community, worker), empty)
        sheets: dict[str, pl.DataFrame] = {}
        for sheet, (pred, cols) in SHEETS.items():
            rows = _walk_order(mine.filter(pred)).select(cols)
            rows = rows.rename({c: _ZH.get(c, "原因" if c == "reason_zh" else c) for c in cols})
            fillable = (VERDICT_HEADER, *FILLABLE) if sheet == LIST_ZH["verify"] else FILLABLE
            rows = rows.with_row_index("序号", offset=1).with_columns(
                pl.col("序号").cast(pl.String), *[pl.lit("").alias(h) for h in fillable]
            )
            sheets[sheet] = rows.with_columns(pl.all().cast(pl.String).fill_null(""))
        mine_grids = [grid_by_id[(street, community, g)] for g in grid_ids if (street, community, g) in grid_by_id]
        g = pl.concat(mine_grids) if mine_grids else grids.clear()
        in_scope, tested = int(g["in_scope"].sum()), int(g["tested"].sum())
        summary = [
            ("街道", str(street)), ("社区", str(community)), ("网格员", str(worker)), ("网格", "、".join(grid_ids)),
            ("数据截至", as_of_text), ("在册人数", str(int(g["residents"].sum()))), ("在住人数", str(in_scope)),
            ("本轮已检测", str(tested)), ("本轮未检测", str(in_scope - tested)),
            ("检测覆盖率", f"{tested / in_scope:.1%}" if in_scope else "—"),
        ] + [(f"{name}（人）", str(frame.height)) for name, frame in sheets.items()]
        books.append(WorkerBook(str(street), str(community), str(worker), grid_ids, sheets, summary))
    return books
