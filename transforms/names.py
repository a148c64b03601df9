"""Person names: cleaning, surname-aware pinyin keys, and a loose key for accent-driven misspellings.

Volunteers type what they hear, so a homophone character is the most common name error; two names
that read the same in pinyin are strong (not conclusive) evidence of the same person.
"""

from __future__ import annotations

import re
from functools import lru_cache

import polars as pl
from pypinyin import Style, lazy_pinyin

from transforms.owned_frames import owned

# Middle dots used in minority and foreign names, as typed on various keyboards and input methods.
MIDDLE_DOTS = "·•・．.‧･∙⋅ˑ᛫‧・-－_"
PLACEHOLDERS = "?？*＊□○〇■"
WILDCARD = "?"

# Surnames whose everyday reading differs from pypinyin's default for the character.
COMPOUND_SURNAMES = {  # syllables space-separated
    "欧阳": "ou yang", "司马": "si ma", "上官": "shang guan", "诸葛": "zhu ge", "东方": "dong fang",
    "皇甫": "huang fu", "尉迟": "yu chi", "公孙": "gong sun", "慕容": "mu rong", "长孙": "zhang sun",
    "宇文": "yu wen", "司徒": "si tu", "令狐": "ling hu", "万俟": "mo qi", "澹台": "tan tai", "单于": "chan yu",
    "夏侯": "xia hou", "轩辕": "xuan yuan", "西门": "xi men", "端木": "duan mu", "南宫": "nan gong",
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


def clean_names(frame: pl.DataFrame, col: str) -> pl.DataFrame:
    """Adds name_norm. Whitespace inside a Chinese name is noise; every middle-dot variant is the same dot; a
    name in Latin letters only (a pinyin spelling) is folded to lower-case letters. The cleaned text is a
    column before the Latin test reads it: inside one expression it was cleaned three times."""
    chinese = (
        pl.col(col).str.strip_chars()
        .str.replace_all(r"[\s\u3000]", "")
        .str.replace_all(f"[{re.escape(MIDDLE_DOTS)}]", "·")
        .str.replace_all(f"[{re.escape(PLACEHOLDERS)}]", WILDCARD)
        .str.strip_chars("·")
    )
    n = pl.col("name_norm")
    latin = n.str.replace_all("[·,']", "").str.contains(r"^[A-Za-z]+$")
    return frame.with_columns(chinese.alias("name_norm")).with_columns(
        pl.when(latin).then(n.str.to_lowercase().str.replace_all(r"[^a-z]", "")).otherwise(n).alias("name_norm"))


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


@lru_cache(maxsize=50_000)
def char_pinyin(ch: str) -> str:
    """One character's everyday reading. Characters are read one by one (not as phrases) so that the
    key is the same whichever way a name is split or typed; unknown characters become '?'."""
    return lazy_pinyin(ch, style=Style.NORMAL, errors=lambda chars: [WILDCARD] * len(chars))[0].lower()


def _split_surname(name: str) -> tuple[list[str], str]:
    if name[:2] in COMPOUND_SURNAMES:
        return COMPOUND_SURNAMES[name[:2]].split(), name[2:]
    if name[0] in SURNAMES:
        return [SURNAMES[name[0]]], name[1:]
    return [], name


def name_syllables(name: str) -> tuple[str, ...]:
    """Pinyin syllables with the surname read as a surname."""
    if not name:
        return ()
    if _LATIN_NAME.match(name):
        return (name.lower().replace(" ", ""),)
    head, rest = _split_surname(name)
    return tuple(head + [char_pinyin(ch) for ch in rest.replace("·", "")])


def pinyin_key(name: str) -> str:
    return "".join(name_syllables(name))


def loose_key(name: str) -> str:
    syl = name_syllables(name)
    if len(syl) == 1 and _LATIN_NAME.match(name or ""):
        return syl[0]
    return "".join(_loose_syllable(s) for s in syl)


def _keys_expr(name: pl.Expr, chars: dict[str, str], loose: bool) -> pl.Expr:
    """The vector form of pinyin_key/loose_key: per-character lookups, all inside polars."""
    def syl(s: str) -> str:
        return _loose_syllable(s) if loose else s

    compound = {k: "".join(syl(x) for x in v.split()) for k, v in COMPOUND_SURNAMES.items()}
    single = {k: syl(v) for k, v in SURNAMES.items()}
    table = {k: syl(v) for k, v in chars.items()}
    head2, head1 = name.str.slice(0, 2), name.str.slice(0, 1)
    is_compound = head2.is_in(list(compound))
    is_surname = head1.is_in(list(single))
    rest = pl.when(is_compound).then(name.str.slice(2)).when(is_surname).then(name.str.slice(1)).otherwise(name)
    head = (
        pl.when(is_compound).then(head2.replace_strict(compound, default=""))
        .when(is_surname).then(head1.replace_strict(single, default=""))
        .otherwise(pl.lit(""))
    )
    rest_py = (
        rest.str.replace_all("·", "", literal=True)
        .str.split("")
        .list.eval(pl.element().replace_strict(table, default=WILDCARD))
        .list.join("")
    )
    latin = name.str.contains(r"^[a-z]+$")
    return pl.when(name.is_null()).then(None).when(latin).then(name).otherwise(head + rest_py)


def normalise_names(frame: pl.DataFrame, *, col: str = "name") -> pl.DataFrame:
    """Adds name_norm, name_py and name_py_loose."""
    frame = clean_names(frame, col)
    chars = (
        frame.select(pl.col("name_norm").str.split("").explode().unique().drop_nulls()).to_series().to_list()
    )
    table = {ch: char_pinyin(ch) for ch in chars if ch and ch != "·"}
    n = pl.col("name_norm")
    return frame.with_columns(
        _keys_expr(n, table, loose=False).alias("name_py"),
        _keys_expr(n, table, loose=True).alias("name_py_loose"),
    )


class NamesMet:
    """The names normalised so far in one refresh, so a name read into pinyin once is not read again in a later
    slice or source. Slices are cut by position, so every slice holds the common names: a 20M-resident
    roster has 0.93 M distinct names but 6.3 M counted slice by slice (2 M rows a slice), and the records
    repeat them. A name's keys depend on its text alone, so what is taken from here is what normalising it
    again would give. Held in memory for the refresh: a few million short strings at city scale. It saves
    about 30 % of the names' time in a district's slices (250,000-500,000 rows); in a city's slices of 2 M
    the distinct values and joining them back cost more than the pinyin, and it saves little."""

    _TEXT, _HASH = "_name_text", "_name_hash"

    def __init__(self) -> None:
        self.known: pl.DataFrame | None = None

    def normalise(self, distinct: pl.DataFrame, col: str) -> pl.DataFrame:
        """normalise_names(distinct, col=col) for a frame of distinct names (col only), in any row order."""
        hashed = distinct.with_columns(pl.col(col).hash(seed=11).alias(self._HASH))
        fresh, found = hashed, None
        if self.known is not None:
            # The known names sharing a hash with one of these: all that can be one of them, and few.
            maybe = self.known.filter(pl.col(self._HASH).is_in(hashed[self._HASH].implode()))
            found = hashed.join(maybe.rename({self._TEXT: col}), on=[self._HASH, col], how="inner", nulls_equal=True)
            fresh = hashed.join(found.select(self._HASH, col), on=[self._HASH, col], how="anti", nulls_equal=True)
        new = normalise_names(fresh, col=col)
        kept = owned(new.rename({col: self._TEXT}))  # not the views into the slice's text: kept for the refresh
        self.known = kept if self.known is None else pl.concat([self.known, kept.select(self.known.columns)])
        out = new if found is None else pl.concat([found.select(new.columns), new])
        return out.drop(self._HASH)
