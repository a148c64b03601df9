"""The coverage report leaders read at a glance: one self-contained HTML page (inline CSS and SVG, no
script, nothing fetched), readable on a phone, with the same figures as coverage.csv.

Every figure cell carries data-level/data-key attributes so a browser test can read the rendered page
and compare it with coverage.csv.
"""

from __future__ import annotations

import html

import polars as pl

CSS = """
body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;padding:12px;color:#1f2328;
background:#fff;max-width:980px}
h1{font-size:1.35rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.2rem 0 .4rem;border-left:4px solid #1a73e8;
padding-left:6px}.muted{color:#57606a;font-size:.9rem}
.cards{display:flex;flex-wrap:wrap;gap:8px}.card{flex:1 1 140px;border:1px solid #d0d7de;border-radius:8px;
padding:8px}.card b{display:block;font-size:1.4rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:right;white-space:nowrap}
th:first-child,td:first-child,td.name{text-align:left}th{background:#f6f8fa}
.bad{color:#b42318;font-weight:600}svg text{font-size:12px;fill:#1f2328}
@media print{body{max-width:none}.scroll{overflow:visible}}
"""


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1%}"


def _bars(rows: list[tuple[str, float | None]], width: int = 640) -> str:
    """Horizontal bars, one per label, 0-100 %."""
    bar_h, gap, label_w = 18, 6, 150
    height = len(rows) * (bar_h + gap) + 10
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="覆盖率">']
    for i, (label, rate) in enumerate(rows):
        y = i * (bar_h + gap) + 5
        w = 0 if rate is None else rate * (width - label_w - 60)
        color = "#b42318" if rate is not None and rate < 0.8 else "#1a73e8"
        parts.append(f'<text x="0" y="{y + 13}">{html.escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{_pct(rate)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _trend(points: list[tuple[str, float | None]], width: int = 640, height: int = 180) -> str:
    """Coverage over the refreshes of the round."""
    pts = [(t, r) for t, r in points if r is not None]
    if not pts:
        return '<p class="muted">本轮尚无历次刷新记录。</p>'
    left, bottom, top = 40, 30, 10
    xs = [left + (i * (width - left - 20) / max(len(pts) - 1, 1)) for i in range(len(pts))]
    ys = [top + (1 - r) * (height - top - bottom) for _, r in pts]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="覆盖率趋势">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/>',
             f'<polyline points="{line}" fill="none" stroke="#1a73e8" stroke-width="2"/>']
    for (t, r), x, y in zip(pts, xs, ys, strict=True):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1a73e8"/>'
                     f'<text x="{x - 14:.1f}" y="{y - 6:.1f}">{_pct(r)}</text>'
                     f'<text x="{x - 18:.1f}" y="{height - 10}">{html.escape(t)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(frame: pl.DataFrame, level: str, label_cols: list[str]) -> str:
    keys = [("in_scope", "在住应检"), ("tested", "已检测"), ("untested", "未检测"), ("coverage_rate", "覆盖率"),
            ("away_reported", "报外出"), ("unvaccinated", "未接种"), ("dose_due", "待下一剂"), ("booster_due", "待加强")]
    head = "".join(f"<th>{h}</th>" for h in ["名称", *[z for _, z in keys]])
    rows = []
    for r in frame.iter_rows(named=True):
        name = " / ".join(str(r[c]) for c in label_cols if r.get(c) is not None)
        ident = html.escape("|".join(str(r[c] or "") for c in ("street", "community", "grid_id")))
        cells = []
        for k, _ in keys:
            v = r.get(k)
            shown = _pct(v) if k == "coverage_rate" else ("" if v is None else str(v))
            cls = ' class="bad"' if k == "coverage_rate" and v is not None and v < 0.8 else ""
            cells.append(f'<td data-level="{level}" data-id="{ident}" data-key="{k}"{cls}>{shown}</td>')
        rows.append(f'<tr><td class="name">{html.escape(name)}</td>{"".join(cells)}</tr>')
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


CHART_COMMUNITIES = 30  # more bars than this are unreadable on a phone: show streets and the lowest


def _coverage_charts(coverage: pl.DataFrame, communities: pl.DataFrame, limit: int) -> list[str]:
    if communities.height <= limit:
        return ["<h2>各社区检测覆盖率</h2>",
                _bars([(str(r["community"]), r["coverage_rate"]) for r in communities.iter_rows(named=True)])]
    streets = coverage.filter(pl.col("level") == "street")
    street_title = "各街道检测覆盖率"
    if streets.height > limit:
        streets, street_title = streets.sort("coverage_rate").head(limit), f"覆盖率最低的{limit}个街道"
    lowest = communities.filter(pl.col("in_scope") > 0).sort("coverage_rate").head(limit)
    return [f"<h2>{street_title}</h2>",
            _bars([(str(r["street"]), r["coverage_rate"]) for r in streets.iter_rows(named=True)]),
            f"<h2>覆盖率最低的{limit}个社区</h2>",
            _bars([(f"{r['street']} {r['community']}", r["coverage_rate"]) for r in lowest.iter_rows(named=True)])]


def chart_bars(coverage: pl.DataFrame) -> int:
    """How many bars the charts draw (for the height of the PNG)."""
    communities = coverage.filter(pl.col("level") == "community").height
    if communities <= CHART_COMMUNITIES:
        return communities
    return min(coverage.filter(pl.col("level") == "street").height, CHART_COMMUNITIES) + CHART_COMMUNITIES


def coverage_report_pages(coverage: pl.DataFrame, call_list: pl.DataFrame,
                          trend: list[tuple[str, float | None]], changes: dict, *, title: str, as_of_text: str,
                          behind: int = 10) -> tuple[str, str]:
    """The coverage page whole, and its top alone (without the tables of every community and grid) for the
    picture: a city's grid table is tens of megabytes, which Chromium took 40 s to load at 20M."""
    total = coverage.filter(pl.col("level") == "total").row(0, named=True)
    communities = coverage.filter(pl.col("level") == "community")
    grids = coverage.filter(pl.col("level") == "grid")
    lagging = grids.filter(pl.col("in_scope") > 0).sort(["coverage_rate", "untested"], descending=[False, True])
    untested = call_list.filter(pl.col("reason") == "untested")  # with the tags the roster gives them
    tags = pl.col("tags").fill_null("")
    priority = (pl.when(tags.str.contains("卧床")).then(pl.lit("卧床")).when(tags.str.contains("残疾")).then(pl.lit("残疾"))
                .when(tags.str.contains("高龄")).then(pl.lit("高龄")).otherwise(pl.lit("其他")))
    by = untested.with_columns(priority.alias("priority")).group_by("list", "priority").len()
    lists = (("call", "电话通知"), ("home_visit", "上门采样"), ("verify", "待核实"))
    prios = ("卧床", "残疾", "高龄", "其他")
    counts = {(a, b): n for a, b, n in by.iter_rows()}
    cross = "".join(
        f'<tr><td class="name">{zh}</td>' + "".join(
            f'<td data-level="untested" data-id="{k}|{p}" data-key="residents">{counts.get((k, p), 0)}</td>'
            for p in prios) + "</tr>" for k, zh in lists)
    change_text = ("本轮首次刷新。" if changes.get("first_run") else
                   f"较上次刷新：新增 {changes.get('new', 0)} 条，移出 {changes.get('came_off', 0)} 条"
                   f"（已检测 {changes.get('came_off_tested', 0)}，已接种 {changes.get('came_off_vaccinated', 0)}，"
                   f"报外出 {changes.get('came_off_away', 0)}），仍在名单 {changes.get('remaining', 0)} 条。")
    cards = [("在住应检", total["in_scope"], "in_scope"), ("已检测", total["tested"], "tested"),
             ("未检测", total["untested"], "untested"), ("覆盖率", _pct(total["coverage_rate"]), "coverage_rate"),
             ("未接种", total["unvaccinated"], "unvaccinated")]
    card_html = "".join(f'<div class="card">{label}<b data-level="total" data-id="||" data-key="{k}">{v}</b></div>'
                        for label, v, k in cards)
    top = [
        "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='muted'>数据截至 {html.escape(as_of_text)}。{html.escape(change_text)}</p>",
        f'<div class="cards">{card_html}</div>',
        '<section id="charts">', *_coverage_charts(coverage, communities, CHART_COMMUNITIES),
        "<h2>本轮历次刷新覆盖率</h2>", _trend(trend), "</section>",
        f"<h2>进度最慢的网格（前{behind}个）</h2>",
        _table(lagging.head(behind), "grid", ["community", "grid_id"]),
        "<h2>未检测人员：按名单与优先级</h2>",
        '<div class="scroll"><table><tr><th>名单</th>' + "".join(f"<th>{p}</th>" for p in prios) + f"</tr>{cross}</table></div>",
    ]
    tables = ["<h2>各社区</h2>", _table(communities, "community", ["street", "community"]),
              "<h2>各网格</h2>", _table(grids, "grid", ["community", "grid_id"])]
    return "\n".join([*top, *tables, "</body></html>"]), "\n".join([*top, "</body></html>"])
