"""A sheet a worker can carry: the per-worker list as a page that prints well (A4, one section per
building, one unbreakable block per unit, the header repeated on every page), one line per person in
building, unit, room order for a door-to-door sweep."""

from __future__ import annotations

import hashlib
import html

import polars as pl

from transforms.contract import LIST_ZH, REASON_ZH

CSS = """
body{font-family:"PingFang SC","Microsoft YaHei",system-ui,sans-serif;margin:10mm;font-size:11pt;color:#000}
h1{font-size:15pt;margin:0 0 2mm}p.meta{margin:0 0 4mm;font-size:9.5pt}
section{margin-bottom:5mm}tbody{break-inside:avoid;page-break-inside:avoid}
td{white-space:nowrap}td:nth-child(7){white-space:normal}thead{display:table-header-group}
h2{font-size:12pt;margin:0 0 1.5mm;border-bottom:1.5pt solid #000}
table{border-collapse:collapse;width:100%}th,td{border:.5pt solid #555;padding:1mm 1.5mm;text-align:left;
vertical-align:top}th{background:#eee}td:nth-child(8){width:14mm}
@page{size:A4;margin:10mm}@media screen{body{max-width:900px}}
"""


WORKER = ["street", "community", "grid_worker"]
HEAD = ("<thead><tr><th>单元</th><th>房号</th><th>姓名</th><th>电话</th><th>名单</th><th>原因</th><th>说明</th>"
        "<th>结果</th></tr></thead>")
_ESCAPE = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}  # as html.escape(quote=True)


_SPECIAL = "[" + "".join(_ESCAPE) + "]"


def _escaped(col: str) -> pl.Expr:
    # Only texts that hold one of the five are replaced in: a city's texts hardly ever do.
    text = pl.col(col).cast(pl.String).fill_null("")
    return pl.when(text.str.contains(_SPECIAL)).then(text.str.replace_many(list(_ESCAPE), list(_ESCAPE.values()))
                                                     ).otherwise(text)


# What a page shows of the call list: the worker, and per person what person_lines renders.
PAGE_COLUMNS = [*WORKER, "resident_id", "building", "unit", "room", "name", "phone", "list", "reason", "detail"]


def row_digests(call_list: pl.DataFrame) -> pl.Series:
    """One hash per call-list row of what a page shows of it: hashed once for a whole walk, then sliced."""
    return call_list.select(PAGE_COLUMNS).hash_rows(seed=0)


def page_digest(rows: pl.Series, *, street: str, community: str, grid_worker: str, grids: str) -> str:
    """Changes whenever anything the page shows changes but its 数据截至 time: rows are row_digests of the
    worker's rows in walking order. A page with last refresh's digest need not be rendered again."""
    h = hashlib.sha256(repr((street, community, grid_worker, grids, rows.len())).encode())
    h.update(rows.to_numpy().tobytes())
    return h.hexdigest()


def person_lines(call_list: pl.DataFrame) -> pl.DataFrame:
    """call_list (CALL_LIST columns) in walking order -> one table row of HTML per worker and person (a door
    is knocked once, whatever the reasons), in the same order: street, community, grid_worker, resident_id,
    building, unit, line. Rendered for every worker in one query: a query per worker cost seconds a district."""
    keys = [*WORKER, "resident_id"]
    rows = call_list.with_columns(
        pl.col("building").fill_null("").cast(pl.String),
        pl.col("unit").fill_null("").cast(pl.String),
        pl.col("list").replace_strict(LIST_ZH, default=pl.col("list")).cast(pl.String).alias("list_zh"),
        pl.col("reason").replace_strict(REASON_ZH, default=pl.col("reason")).cast(pl.String).alias("reason_zh"),
        pl.col("detail").cast(pl.String),
    ).with_row_index("_at").with_columns(pl.len().over(keys).alias("_n"))
    kept = [*keys, "building", "unit", "room", "name", "phone", "list_zh", "reason_zh", "detail"]
    # Most people are on the list for one reason: their one row is their line as it is. Joining the reasons of
    # every person as a group of its own cost three quarters of the pages' rendering (9 of 10 groups of one).
    several = rows.filter(pl.col("_n") > 1).group_by(keys, maintain_order=True).agg(
        pl.col("_at", "building", "unit", "room", "name", "phone").first(),
        pl.col("list_zh").unique(maintain_order=True).str.join("、"),
        pl.col("reason_zh").str.join("、"),
        pl.col("detail").str.join("；"),
    )
    # each person where their first row was: the order group_by(maintain_order) gives
    people = pl.concat([rows.filter(pl.col("_n") == 1).select("_at", *kept), several.select("_at", *kept)],
                       how="vertical_relaxed").sort("_at")
    # The texts escaped first, each a column of its own, then put together: as one expression it took twice as long.
    shown = ("unit", "room", "name", "phone", "list_zh", "reason_zh", "detail")
    people = people.with_columns(_escaped(c).alias(f"_shown_{c}") for c in shown)
    # A cell's end tag is left out where HTML lets it be (before the next cell or row, HTML 13.1.2.4), and the
    # columns are styled by place, not by a class on each cell: markup was two fifths of a page's bytes.
    parts = [pl.lit("<tr>")]
    for c in shown:
        parts += [pl.lit("<td>"), pl.col(f"_shown_{c}")]
    parts.append(pl.lit("<td></td>"))  # the box the worker ticks, closed: the line break after is no part of it
    return people.select(*WORKER, "resident_id", "building", "unit", pl.concat_str(parts).alias("line"))


def page_bodies(lines: pl.DataFrame) -> pl.DataFrame:
    """person_lines' lines (any workers', in walking order) -> per worker, in the order they come: street,
    community, grid_worker, people (lines) and body, the page's sections: one per building and one unbreakable
    block per unit, each in the order it first comes in the walk. Made for a block of communities in one query:
    Python putting each page's lines together cost more than the rest of the page."""
    building, unit, at = [*WORKER, "building"], [*WORKER, "building", "unit"], pl.col("_at")
    # Each line put where its unit and building first come (a worker's lines are one span, so the order of the
    # buildings' first lines keeps the workers as they came), with the markup that opens and closes them, then
    # one join per worker: joining units, then buildings, then workers copied every page three times.
    ordered = lines.with_row_index("_at").with_columns(
        at.min().over(building).alias("_building"), at.min().over(unit).alias("_unit"),
        pl.len().over(building).alias("_people"),
    ).sort("_building", "_unit", "_at")

    def edge(col: str, step: int) -> pl.Expr:  # the first (step 1) or last (step -1) line of its building or unit
        return (pl.col(col) != pl.col(col).shift(step)).fill_null(True)

    label = pl.when(pl.col("building") != "").then(_escaped("building") + pl.lit("栋")).otherwise(pl.lit("楼栋不详"))
    opening = pl.concat_str(pl.lit("<section><h2>"), label, pl.lit("（"), pl.col("_people").cast(pl.String),
                            pl.lit(f" 人）</h2><table>{HEAD}\n"))
    piece = pl.concat_str(
        pl.when(edge("_building", 1)).then(opening).otherwise(pl.lit("")),
        pl.when(edge("_unit", 1)).then(pl.lit("<tbody>\n")).otherwise(pl.lit("")),
        pl.col("line"),
        pl.when(edge("_unit", -1)).then(pl.lit("\n</tbody>")).otherwise(pl.lit("")),
        pl.when(edge("_building", -1)).then(pl.lit("\n</table></section>")).otherwise(pl.lit("")),
    )
    return ordered.select(*WORKER, piece.alias("_piece")).group_by(WORKER, maintain_order=True).agg(
        pl.len().cast(pl.Int64).alias("people"), pl.col("_piece").str.join("\n").alias("body"))


def page_html(body: bytes, people: int, *, street: str, community: str, grid_worker: str, grids: str,
              as_of_text: str) -> bytes:
    """A worker's page, as UTF-8, around its body (page_bodies, taken as bytes): a city's bodies went from
    polars to Python text and back to UTF-8 for the file, a quarter of the pages' time."""
    head = "\n".join([
        "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(community)} {html.escape(grid_worker)} 入户名单</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(community)} {html.escape(grid_worker)} 入户走访名单</h1>",
        f'<p class="meta">{html.escape(street)} · 网格 {html.escape(grids)} · 数据截至 {html.escape(as_of_text)} · '
        f"共 {people} 人</p>",  # person_lines gives a person one line
        "",
    ]).encode()
    return b"".join([head, body if people else "<p>本次无需联系人员。</p>".encode(), b"\n</body></html>"])
