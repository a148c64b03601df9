"""Addresses written a dozen ways: 一巷/1巷, 3栋/3号楼/3幢/3座, 502/502室, 3-2-502, prefixes dropped.

The canonical form keeps the place name and the numbered parts; building, unit and room are pulled out
so a sheet can be walked floor by floor and so that two records can be compared building by building.
"""

from __future__ import annotations

import re
from functools import lru_cache

import polars as pl

from transforms.idcard import FULL_WIDTH

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_MARKERS = "巷|弄|号楼|号|栋|幢|座|楼|单元|室|层|期|排|组|门|街坊|区"
_CN_NUM = re.compile(rf"([零〇一二两三四五六七八九十百千]+)(?=({_MARKERS}))")
_ADMIN = re.compile(r"^.*?(省|自治区|特别行政区)|^.*?市|^.*?(?<!小)(区|县)(?!\d)|^.*?街道|^.*?(镇|乡)(?!\d)")
_DASHED = re.compile(r"(\d+)[-－—_](\d+)[-－—_](\d+)")
_DASHED2 = re.compile(r"(\d+)栋?[-－—_](\d+)(室|房)?$")
_FULL_ASCII = {chr(c): chr(c - 0xFEE0) for c in range(0xFF21, 0xFF5B)}


def chinese_number(text: str) -> int:
    """十二 -> 12, 一百零五 -> 105, 二〇五 -> 205 (digit-by-digit form)."""
    if all(ch in _DIGITS for ch in text):
        return int("".join(str(_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        else:
            total += (current or 1) * _UNITS[ch]
            current = 0
    return total + current


@lru_cache(maxsize=500_000)
def canonical_address(raw: str) -> tuple[str, str, str, str, str]:
    """Returns (canonical, place, building, unit, room)."""
    a = raw.translate(str.maketrans(FULL_WIDTH | _FULL_ASCII))
    a = re.sub(r"[\s\u3000,，。()（）#]", "", a)
    a = _CN_NUM.sub(lambda m: str(chinese_number(m.group(1))), a)
    a = _DASHED.sub(r"\1栋\2单元\3", a)
    a = _DASHED2.sub(r"\1栋\2", a)
    a = re.sub(r"(\d+)(号楼|幢|座|栋楼|楼栋)", r"\1栋", a)
    a = re.sub(r"(\d+)(室|房|号房)$", r"\1", a)
    # Drop the administrative prefix, repeatedly: 广东省深圳市南山区粤海街道 ...
    prev = None
    while prev != a:
        prev = a
        m = _ADMIN.match(a)
        if m and len(a) - m.end() >= 4:
            a = a[m.end():]
    a = re.sub(r"^[^\d]*?社区(?=.)", "", a) if re.search(r"社区.*\d", a) else a
    building = _search(r"(\d+)栋", a)
    unit = _search(r"(\d+)单元", a)
    room = _search(r"(\d+)$", a) if (building or unit or re.search(r"\d+(巷|号|弄)\d+$", a)) else ""
    first_digit = re.search(r"\d", a)
    place = a[: first_digit.start()] if first_digit else a
    return a, place, building, unit, room


def _search(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    return m.group(1) if m else ""


def normalise_addresses(frame: pl.DataFrame, *, col: str = "address") -> pl.DataFrame:
    """Adds addr_canon, addr_place, building, unit, room and addr_block (place + house + building).

    Computed once per distinct address: a district has far fewer buildings than residents.
    """
    uniq = frame.select(pl.col(col).unique().drop_nulls()).to_series().to_list()
    parts = [canonical_address(a) for a in uniq]
    table = pl.DataFrame(
        {
            col: uniq,
            "addr_canon": [p[0] for p in parts],
            "addr_place": [p[1] for p in parts],
            "building": [p[2] for p in parts],
            "unit": [p[3] for p in parts],
            "room": [p[4] for p in parts],
        },
        schema={k: pl.String for k in (col, "addr_canon", "addr_place", "building", "unit", "room")},
    )
    out = frame.join(table, on=col, how="left", maintain_order="left")
    # The block key stops at the building: unit and room are the parts most often dropped or mistyped.
    block = pl.col("addr_canon").str.replace(r"\d+单元.*$", "").str.replace(r"(\d+栋).*$", "$1")
    return out.with_columns(
        pl.when(pl.col("building") != "").then(block).otherwise(None).alias("addr_block")
    )
