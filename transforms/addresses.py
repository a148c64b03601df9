"""Addresses written a dozen ways: 一巷/1巷, 3栋/3号楼/3幢/3座, 502/502室, 3-2-502, prefixes dropped.

The canonical form keeps the place name and the numbered parts; building, unit and room are pulled out
so a sheet can be walked floor by floor and so that two records can be compared building by building.
"""

from __future__ import annotations

import re

import polars as pl

from transforms.idcard import FULL_WIDTH

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_MARKERS = "巷|弄|号楼|号|栋|幢|座|楼|单元|室|层|期|排|组|门|街坊|区"
_CN_RUN = rf"[零〇一二两三四五六七八九十百千]+(?:{_MARKERS})"
_FULL_ASCII = {chr(c): chr(c - 0xFEE0) for c in range(0xFF21, 0xFF5B)}
# Administrative prefixes, dropped one after another while at least 4 characters remain.
_ADMIN = (r"^[^\d]*?(?:省|自治区|特别行政区)", r"^[^\d]*?市", r"^[^\d]*?[^小\d](?:区|县)", r"^[^\d]*?街道",
          r"^[^\d]*?[^\d](?:镇|乡)")


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


def _numeral_table(runs: list[str]) -> dict[str, str]:
    out = {}
    for run in runs:
        m = re.match(r"([零〇一二两三四五六七八九十百千]+)(.*)$", run)
        if m:
            out[run] = str(chinese_number(m.group(1))) + m.group(2)
    return out


def _canonical(frame: pl.DataFrame, col: str, numerals: dict[str, str]) -> pl.DataFrame:
    """Adds addr_canon. Each step is materialised so that the expression never references itself twice."""
    a = pl.col("addr_canon")
    out = frame.with_columns(
        pl.col(col).str.replace_many(list(FULL_WIDTH | _FULL_ASCII), list((FULL_WIDTH | _FULL_ASCII).values()))
        .str.replace_all(r"[\s\u3000,，。()（）#]", "")
        .alias("addr_canon")
    )
    if numerals:
        # Longest first, so 十三栋 is replaced whole rather than its tail 三栋.
        keys = sorted(numerals, key=len, reverse=True)
        out = out.with_columns(a.str.replace_many(keys, [numerals[k] for k in keys], leftmost=True))
    # Building words become 栋 before a building-dash-room tail is read: 3号楼-502 is 3栋502, as 3栋-502 is
    # (read the other way round, 3号楼-502 became 3栋-502, which a second pass turned into 3栋502).
    out = out.with_columns(
        a.str.replace_all(r"(\d+)[-－—_](\d+)[-－—_](\d+)", "${1}栋${2}单元${3}")
        # (a plain 3栋, most addresses, is left alone rather than replaced by itself)
        .str.replace_all(r"(\d+)(?:(?:号楼|幢|座|栋楼|楼栋)(?:楼|栋)*|栋(?:楼|栋)+)", "${1}栋")
        .str.replace(r"(\d+)栋?[-－—_](\d+)(?:室|房)?$", "${1}栋${2}")
        .str.replace(r"(\d+)(?:室|房|号房)$", "${1}")
    )
    return _without_prefixes(out)


def _without_prefixes(frame: pl.DataFrame) -> pl.DataFrame:
    """addr_canon with its administrative prefixes (_ADMIN) and its community dropped, and addr_place, the
    place name that is left before the first digit.

    Every prefix lies in the text before the first digit (the head), and whether one is cut depends only on
    the head and on whether at least 4 characters would remain, so the heads are cut once each, not each
    address: a city's addresses have a few thousand heads (street, community, road), and the ten passes
    over every address were a third of normalising them."""
    a = pl.col("addr_canon")
    head = pl.col("_head")
    out = frame.with_columns(a.str.extract(r"^([^\d]*)", 1).alias("_head")).with_columns(
        (a.str.len_chars() - head.str.len_chars()).alias("_tail")).with_columns(
        # How much the rest adds to the length that must remain (only "4 or more" matters).
        pl.min_horizontal(pl.col("_tail"), pl.lit(4, dtype=pl.UInt32)).alias("_rest"))
    cut = out.select(head, "_rest").unique().with_columns(head.alias("addr_place"))
    place = pl.col("addr_place")
    for _ in range(2):
        for pattern in _ADMIN:
            shorter = place.str.replace(pattern, "")
            cut = cut.with_columns(
                pl.when(shorter.str.len_chars() + pl.col("_rest") >= 4).then(shorter).otherwise(place)
                .alias("addr_place"))
    # 社区 and what comes before it go where a number follows (the rest is a number onwards, if any).
    cut = cut.with_columns(pl.when(pl.col("_rest") > 0).then(place.str.replace(r"^[^\d]*?社区", "")).otherwise(place)
                           .alias("addr_place"))
    out = out.join(cut, on=["_head", "_rest"], how="left", maintain_order="left")
    return out.with_columns(pl.concat_str([place, a.str.tail(pl.col("_tail"))]).alias("addr_canon")).drop(
        "_head", "_tail", "_rest")


def normalise_addresses(frame: pl.DataFrame, *, col: str = "address") -> pl.DataFrame:
    """Adds addr_canon, addr_place, building, unit, room and addr_block (place + house + building)."""
    runs = frame.select(pl.col(col).str.extract_all(_CN_RUN).explode().unique().drop_nulls()).to_series().to_list()
    out = _canonical(frame, col, _numeral_table(runs))
    c = pl.col("addr_canon")
    # Building and unit are columns before the room reads them: inside one expression each would be
    # extracted twice.
    out = out.with_columns(c.str.extract(r"(\d+)栋", 1).alias("_building"), c.str.extract(r"(\d+)单元", 1).alias("_unit"))
    building, unit = pl.col("_building"), pl.col("_unit")
    has_room = building.is_not_null() | unit.is_not_null() | c.str.contains(r"\d+(?:巷|号|弄)\d+$")
    out = out.with_columns(
        building.fill_null("").alias("building"),
        unit.fill_null("").alias("unit"),
        pl.when(has_room).then(c.str.extract(r"(\d+)$", 1)).otherwise(None).fill_null("").alias("room"),
    ).drop("_building", "_unit")
    # The block key stops at the building: unit and room are the parts most often dropped or mistyped.
    block = c.str.replace(r"\d+单元.*$", "").str.replace(r"(\d+栋).*$", "${1}")
    return out.with_columns(pl.when(pl.col("building") != "").then(block).otherwise(None).alias("addr_block"))


def canonical_address(raw: str) -> tuple[str, str, str, str, str]:
    """Scalar form for tests and one-off use: (canonical, place, building, unit, room)."""
    row = normalise_addresses(pl.DataFrame({"address": [raw]}, schema={"address": pl.String})).row(0, named=True)
    return row["addr_canon"], row["addr_place"], row["building"], row["unit"], row["room"]
