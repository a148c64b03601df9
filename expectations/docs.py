"""An offline copy of the Great Expectations Data Docs for the run's output folder.

GE's pages load Bootstrap, jQuery and Vega from CDNs and its index is built by script; street office
machines are often offline. The copy keeps GE's server-rendered validation and suite pages with every
external reference removed and a small local stylesheet, and replaces the index with a static page
(in Chinese, for the data staff) that links them and says what failed.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from expectations.suites import SuiteResult
from transforms.contract import INPUTS

# Every <link> goes (stylesheets are inlined; the favicon is not copied), and external images.
_EXTERNAL_TAG = re.compile(r"<link\b[^>]*>|<img\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>", re.IGNORECASE)
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_EXTERNAL_HREF = re.compile(r"\bhref=([\"'])(?:https?:)?//[^\"']*\1", re.IGNORECASE)
_FORM = re.compile(r"<form\b.*?</form\s*>", re.IGNORECASE | re.DOTALL)
_EXTERNAL_URL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'<>)]*")

STYLE = """
body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:1rem;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f2f2f2}.ok{color:#17663a}.fail{color:#b00020;font-weight:bold}
.hide,.d-none,.modal,.navbar-toggler{display:none}a{color:#0b57d0}
"""

_LOCAL_STYLE = f'<style id="gridsweep-offline">{STYLE}</style>'

SOURCE_ZH = {name: contract.zh for name, contract in INPUTS.items()}
EXPECTATION_ZH = {
    "expect_table_columns_to_match_set": "列与数据约定一致",
    "expect_column_values_to_not_be_null": "必填项不为空",
    "expect_column_values_to_be_unique": "编号不重复",
    "expect_column_values_to_be_in_set": "取值在允许范围内",
    "expect_column_values_to_match_regex": "格式正确",
    "expect_column_values_to_be_between": "取值在合理范围内",
}


def offline_html(text: str) -> str:
    """Drops scripts and every reference to another host; adds the local stylesheet."""
    text = _SCRIPT.sub("", text)
    text = _FORM.sub("", text)
    text = _EXTERNAL_TAG.sub("", text)
    text = _EXTERNAL_HREF.sub('href="#"', text)
    text = _EXTERNAL_URL.sub("", text)
    if "</head>" in text:
        return text.replace("</head>", _LOCAL_STYLE + "</head>", 1)
    return _LOCAL_STYLE + text


def export_offline(site: Path, dest: Path, results: dict[str, SuiteResult]) -> None:
    """Copies GE's rendered pages from site into dest, offline, and writes dest/index.html."""
    dest.mkdir(parents=True, exist_ok=True)
    pages: dict[str, str] = {}
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site)
        if rel.parts[0] not in ("validations", "expectations"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(offline_html(page.read_text(encoding="utf-8")), encoding="utf-8")
        if rel.parts[0] == "validations":
            # validations/<suite>/<run>/<time>/<batch>.html: one page per source.
            pages[rel.parts[1].removesuffix("_contract")] = rel.as_posix()
    dest.joinpath("index.html").write_text(index_html(results, pages), encoding="utf-8")


def index_html(results: dict[str, SuiteResult], pages: dict[str, str]) -> str:
    parts = [
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>数据校验报告</title>{_LOCAL_STYLE}</head><body>",
        "<h1>数据校验报告（Great Expectations）</h1>",
        "<p>本报告校验通过行级检查、将进入匹配的数据行。无法使用的行已移入 quarantine 文件夹，"
        "并附行号和原因。</p>",
    ]
    for name, result in results.items():
        label = html.escape(SOURCE_ZH.get(name, name))
        verdict = "<span class='ok'>通过</span>" if result.success else "<span class='fail'>未通过</span>"
        link = f" — <a href='{html.escape(pages[name])}'>详细结果</a>" if name in pages else ""
        parts.append(f"<h2>{label}（{html.escape(name)}）：{verdict}{link}</h2>")
        if result.rows_checked < result.rows_total:
            parts.append(f"<p>共 {result.rows_total} 行，随机抽取 {result.rows_checked} 行检查（逐行检查已覆盖全部行）。</p>")
        parts.append("<table><tr><th>检查</th><th>列</th><th>结果</th><th>检查行数</th><th>不符合行数</th></tr>")
        for e in result.expectations:
            ok = "<span class='ok'>通过</span>" if e.success else "<span class='fail'>未通过</span>"
            zh = EXPECTATION_ZH.get(e.expectation, e.expectation)
            parts.append(
                f"<tr><td>{html.escape(zh)}<br><small>{html.escape(e.expectation)}</small></td>"
                f"<td>{html.escape(e.column or '')}</td><td>{ok}</td>"
                f"<td>{'' if e.element_count is None else e.element_count}</td>"
                f"<td>{'' if e.unexpected_count is None else e.unexpected_count}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
