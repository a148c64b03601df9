"""A sheet a worker can carry: the per-worker list as a page that prints well (A4, one section per
building, one unbreakable block per unit, the header repeated on every page), one line per person in
building, unit, room order for a door-to-door sweep."""

from __future__ import annotations

import html

import polars as pl

from transforms.contract import LIST_ZH, REASON_ZH

CSS = """
body{font-family:"PingFang SC","Microsoft YaHei",system-ui,sans-serif;margin:10mm;font-size:11pt;color:#000}
h1{font-size:15pt;margin:0 0 2mm}p.meta{margin:0 0 4mm;font-size:9.5pt}
section{margin-bottom:5mm}tbody{break-inside:avoid;page-break-inside:avoid}
td.n{white-space:nowrap}thead{display:table-header-group}
h2{font-size:12pt;margin:0 0 1.5mm;border-bottom:1.5pt solid #000}
table{border-collapse:collapse;width:100%}th,td{border:.5pt solid #555;padding:1mm 1.5mm;text-align:left;
vertical-align:top}th{background:#eee}td.box{width:14mm}
@page{size:A4;margin:10mm}@media screen{body{max-width:900px}}
"""


def worker_print_html(rows: pl.DataFrame, *, street: str, community: str, grid_worker: str, grids: str,
                      as_of_text: str) -> str:
    """rows: this worker's call-list rows (CALL_LIST columns), already in walking order."""
    out = [
        "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(community)} {html.escape(grid_worker)} 入户名单</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(community)} {html.escape(grid_worker)} 入户走访名单</h1>",
        f'<p class="meta">{html.escape(street)} · 网格 {html.escape(grids)} · 数据截至 {html.escape(as_of_text)} · '
        f"共 {rows['resident_id'].n_unique()} 人</p>",
    ]
    if rows.height == 0:
        out.append("<p>本次无需联系人员。</p>")
    # One line per person: a door is knocked once, whatever the reasons.
    people = rows.with_columns(
        pl.col("building").fill_null("").cast(pl.String),
        pl.col("unit").fill_null("").cast(pl.String),
        pl.col("list").replace_strict(LIST_ZH, default=pl.col("list")).alias("list_zh"),
        pl.col("reason").replace_strict(REASON_ZH, default=pl.col("reason")).alias("reason_zh"),
    ).group_by("resident_id", maintain_order=True).agg(
        pl.col("building", "unit", "room", "name", "phone").first(),
        pl.col("list_zh").unique(maintain_order=True).str.join("、"),
        pl.col("reason_zh").str.join("、"),
        pl.col("detail").str.join("；"),
    )
    head = ("<thead><tr><th>单元</th><th>房号</th><th>姓名</th><th>电话</th><th>名单</th><th>原因</th><th>说明</th>"
            "<th>结果</th></tr></thead>")
    for (b,), building in people.group_by("building", maintain_order=True):
        label = f"{b}栋" if b else "楼栋不详"
        out.append(f"<section><h2>{html.escape(label)}（{building.height} 人）</h2><table>{head}")
        for _, unit in building.group_by("unit", maintain_order=True):
            out.append("<tbody>")
            for r in unit.iter_rows(named=True):
                short = [r["unit"], r["room"], r["name"], r["phone"], r["list_zh"], r["reason_zh"]]
                out.append("<tr>" + "".join(f'<td class="n">{html.escape(str(v or ""))}</td>' for v in short)
                           + f"<td>{html.escape(str(r['detail'] or ''))}</td>" + '<td class="box"></td></tr>')
            out.append("</tbody>")
        out.append("</table></section>")
    out.append("</body></html>")
    return "\n".join(out)
