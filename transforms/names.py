"""Person names: cleaning, surname-aware pinyin keys, and a loose key for accent-driven misspellings.

Volunteers type what they hear, so a homophone character is the most common name error; two names
that read the same in pinyin are strong (not conclusive) evidence of the same person.
"""

from __future__ import annotations

import re
from functools import lru_cache

import polars as pl
from pypinyin import Style, lazy_pinyin

# Middle dots used in minority and foreign names, as typed on various keyboards and input methods.
MIDDLE_DOTS = "·•・．.‧･∙⋅ˑ᛫‧・-－_"
PLACEHOLDERS = "?？*＊□○〇■"
WILDCARD = "?"

# Surnames whose everyday reading differs from pypinyin's default for the character.
COMPOUND_SURNAMES = {
    "欧阳": "ouyang", "司马": "sima", "上官": "shangguan", "诸葛": "zhuge", "东方": "dongfang",
    "皇甫": "huangfu", "尉迟": "yuchi", "公孙": "gongsun", "慕容": "murong", "长孙": "zhangsun",
    "宇文": "yuwen", "司徒": "situ", "令狐": "linghu", "万俟": "moqi", "澹台": "tantai", "单于": "chanyu",
    "夏侯": "xiahou", "轩辕": "xuanyuan", "西门": "ximen", "端木": "duanmu", "南宫": "nangong",
}
SURNAMES = {
    "单": "shan", "曾": "zeng", "仇": "qiu", "解": "xie", "区": "ou", "朴": "piao", "查": "zha",
    "盖": "ge", "乐": "yue", "覃": "qin", "缪": "miao", "翟": "zhai", "召": "shao", "秘": "bi",
    "繁": "po", "员": "yun", "句": "gou", "种": "chong", "折": "she", "黑": "he", "那": "na",
    "尉": "yu", "长": "chang", "重": "chong", "祭": "zhai", "宿": "su", "藏": "zang", "卜": "bu",
    "柏": "bai", "薄": "bo", "葛": "ge", "车": "che", "任": "ren", "石": "shi", "沈": "shen",
    "华": "hua", "贾": "jia", "莫": "mo", "冼": "xian", "洗": "xian", "燕": "yan", "过": "guo",
    "隗": "wei", "牟": "mou", "眭": "sui", "能": "nai", "角": "jue", "殷": "yin", "都": "du",
    "缴": "jiao", "鲜": "xian", "叶": "ye", "纪": "ji", "佘": "she", "蕃": "pi", "曲": "qu",
    "瞿": "qu", "应": "ying", "隽": "juan", "阚": "kan", "相": "xiang", "逄": "pang", "庞": "pang",
}

_LATIN_NAME = re.compile(r"^[A-Za-z ,.'-]+$")
_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))


def clean_name_expr(col: str) -> pl.Expr:
    """Whitespace inside a Chinese name is noise; every middle-dot variant is the same dot; a name in
    Latin letters only (a pinyin spelling) is folded to lower-case letters."""
    chinese = (
        pl.col(col).str.strip_chars()
        .str.replace_all(r"[\s\u3000]", "")
        .str.replace_all(f"[{re.escape(MIDDLE_DOTS)}]", "·")
        .str.replace_all(f"[{re.escape(PLACEHOLDERS)}]", WILDCARD)
        .str.strip_chars("·")
    )
    latin = chinese.str.replace_all("[·,']", "").str.contains(r"^[A-Za-z]+$")
    return pl.when(latin).then(chinese.str.to_lowercase().str.replace_all(r"[^a-z]", "")).otherwise(chinese)


def _loose_syllable(s: str) -> str:
    """Accents that volunteers write down as heard: zh/z, ch/c, sh/s, n/l, -ng/-n, hu/fu."""
    for full, short in _INITIALS:
        if s.startswith(full):
            s = short + s[len(full):]
            break
    if s.startswith("n") and len(s) > 1:
        s = "l" + s[1:]
    if s.startswith("hu"):
        s = "fu" + s[2:]
    if s.endswith("ng"):
        s = s[:-1]
    return s


@lru_cache(maxsize=200_000)
def name_syllables(name: str) -> tuple[str, ...]:
    """Pinyin syllables with the surname read as a surname; unknown characters become '?'."""
    if not name:
        return ()
    if _LATIN_NAME.match(name):
        return (name.lower().replace(" ", ""),)
    head: list[str] = []
    rest = name
    if name[:2] in COMPOUND_SURNAMES:
        head, rest = [COMPOUND_SURNAMES[name[:2]]], name[2:]
    elif name[0] in SURNAMES:
        head, rest = [SURNAMES[name[0]]], name[1:]
    rest = rest.replace("·", "")
    tail = lazy_pinyin(rest, style=Style.NORMAL, errors=lambda chars: [WILDCARD] * len(chars)) if rest else []
    return tuple(head + [t.lower() for t in tail])


def pinyin_key(name: str) -> str:
    return "".join(name_syllables(name))


def loose_key(name: str) -> str:
    syl = name_syllables(name)
    if len(syl) == 1 and _LATIN_NAME.match(name or ""):
        return syl[0]
    return "".join(_loose_syllable(s) for s in syl)


def normalise_names(frame: pl.DataFrame, *, col: str = "name") -> pl.DataFrame:
    """Adds name_norm, name_py and name_py_loose; pinyin is computed once per distinct name."""
    frame = frame.with_columns(clean_name_expr(col).alias("name_norm"))
    uniq = frame.select(pl.col("name_norm").unique().drop_nulls()).to_series().to_list()
    keys = pl.DataFrame(
        {
            "name_norm": uniq,
            "name_py": [pinyin_key(n) for n in uniq],
            "name_py_loose": [loose_key(n) for n in uniq],
        },
        schema={"name_norm": pl.String, "name_py": pl.String, "name_py_loose": pl.String},
    )
    return frame.join(keys, on="name_norm", how="left", maintain_order="left")
