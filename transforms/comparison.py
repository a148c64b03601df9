"""Compare each candidate pair field by field, turn the levels into a score, and say why in Chinese.

Levels, not raw similarities, are what the score and the explanation use: a worker can check
"证件号相差一位，姓名同音" on the phone; a float cannot be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import polars as pl

from transforms.edit_distance import osa_distances, osa_within_one
from transforms.idcard import ID_OK, ID_UPGRADED

_VALID_ID = [ID_OK, ID_UPGRADED]  # IDs whose check digit holds (an old 15-digit one given its own)
ID_LEVELS = ("exact", "household", "one_edit", "masked_agree", "birth_segment", "mismatch", "missing")
NAME_LEVELS = ("exact", "homophone", "wildcard", "loose", "dropped", "similar", "different")
PHONE_LEVELS = ("exact", "household", "one_edit", "masked_agree", "different", "missing")
BIRTH_LEVELS = ("equal", "different", "missing")
SEX_LEVELS = ("equal", "different", "missing")
ADDRESS_LEVELS = ("same", "building", "different", "missing")
# Each level column holds its field's levels as an Enum (an index into the tuple above), not as text: a
# when/then chain of text literals wrote a string for every pair, and the score looked each one up again
# (compare and score of 2.47M pairs spent a third of their time there).
LEVELS = {"id": ID_LEVELS, "name": NAME_LEVELS, "phone": PHONE_LEVELS, "birth": BIRTH_LEVELS, "sex": SEX_LEVELS,
          "address": ADDRESS_LEVELS}
LEVEL_TYPES = {f: pl.Enum(levels) for f, levels in LEVELS.items()}


def _level(fieldname: str, name: str) -> pl.Expr:
    return pl.lit(name, dtype=LEVEL_TYPES[fieldname])


# A level of each field, as a literal: id_lv("exact").
id_lv, name_lv, phone_lv, birth_lv, sex_lv, address_lv = (partial(_level, f) for f in LEVELS)

EXPLAIN = {
    "id": {"exact": "证件号一致", "household": "证件号为同户家人的证件号", "one_edit": "证件号相差一位", "masked_agree": "脱敏证件号可见部分一致", "birth_segment": "证件号出生日期段一致",
           "mismatch": "证件号不一致", "missing": "缺证件号"},
    "name": {"exact": "姓名一致", "homophone": "姓名同音", "wildcard": "姓名含生僻字占位、其余一致",
             "loose": "姓名近音", "dropped": "姓名漏一字", "similar": "姓名相近", "different": "姓名不同"},
    "phone": {"exact": "手机号一致", "household": "手机号为同户家人号码", "one_edit": "手机号相差一位",
              "masked_agree": "脱敏手机号可见部分一致", "different": "手机号不同", "missing": ""},
    "birth": {"equal": "出生日期一致", "different": "出生日期不同", "missing": ""},
    "sex": {"equal": "", "different": "性别不同", "missing": ""},
    "address": {"same": "地址一致", "building": "同一楼栋", "different": "", "missing": ""},
}


def _weights(**kw: float) -> dict[str, float]:
    return dict(kw)


@dataclass(frozen=True)
class ScoreSettings:
    """Log2 evidence per level, hand-set from how often each level occurs for true and false pairs.

    A family shares phone and address, so those weigh little; only an ID or a name with a birth date
    says who the person is. A relative's ID ('household') places the record in a family: with the
    member's own name that is as good as a phone. Seven visible digits of a masked phone agreeing are
    about as rare by chance as a phone one digit off.
    """

    id: dict[str, float] = field(default_factory=lambda: _weights(
        exact=12, household=3, one_edit=7, masked_agree=3, birth_segment=0, mismatch=-10, missing=0))
    # 'similar' (one character differs, reads differently) is more often a sibling than a typo: it
    # counts against the pair, only less than a different name.
    name: dict[str, float] = field(default_factory=lambda: _weights(
        exact=7, homophone=5.5, wildcard=5.5, loose=2, dropped=1, similar=-4, different=-9))
    phone: dict[str, float] = field(default_factory=lambda: _weights(
        exact=4, household=3.5, one_edit=3, masked_agree=3, different=-1, missing=0))
    birth: dict[str, float] = field(default_factory=lambda: _weights(equal=3.5, different=-7, missing=0))
    sex: dict[str, float] = field(default_factory=lambda: _weights(equal=0, different=-7, missing=0))
    # The same flat is as telling as a phone; the same building only narrows it down.
    address: dict[str, float] = field(default_factory=lambda: _weights(same=4, building=1, different=0, missing=0))


# The visible parts of a masked ID (region, last four) and of a masked phone (first three, last four).
_ID_VISIBLE = ((0, 6), (14, 4))
_PHONE_VISIBLE = ((0, 3), (-4, 4))
_PHONE_HELPERS = ["_phone_dist", "_phone_masked", "_phone_visible_agree"]


def _phone_columns(pairs: pl.DataFrame) -> list[pl.Series]:
    """What _phone_level reads besides the phones: _phone_dist, _phone_masked, _phone_visible_agree."""
    phones_l, phones_r = pairs["phone_norm_l"], pairs["phone_norm_r"]
    masked = (phones_l.str.contains("*", literal=True) | phones_r.str.contains("*", literal=True)).fill_null(False)
    return [osa_within_one(phones_l, phones_r).alias("_phone_dist"), masked.alias("_phone_masked"),
            _visible_agree(phones_l, phones_r, masked, _PHONE_VISIBLE).alias("_phone_visible_agree")]


def _phone_level() -> pl.Expr:
    """Reads phone_norm_l/_r, household_phones_r and _phone_columns."""
    c = pl.col
    phones = c("phone_norm_l").is_not_null() & c("phone_norm_r").is_not_null()
    return (
        pl.when(~phones).then(phone_lv("missing"))
        .when(c("phone_norm_l") == c("phone_norm_r")).then(phone_lv("exact"))
        .when(c("household_phones_r").list.contains(c("phone_norm_l")).fill_null(False)).then(phone_lv("household"))
        .when(c("_phone_masked")).then(
            pl.when(c("_phone_visible_agree")).then(phone_lv("masked_agree")).otherwise(phone_lv("different")))
        .when(c("_phone_dist") <= 1).then(phone_lv("one_edit"))
        .otherwise(phone_lv("different"))
    )


def _only_where(where: pl.Series, compute, otherwise: bool = False) -> pl.Series:
    """compute(rows) for the rows `where` says (a null counts as no), `otherwise` for the others: a level
    that reads a column only in one of its later branches need not have it worked out for every pair."""
    rows = where.fill_null(False).arg_true()
    return pl.repeat(otherwise, len(where), eager=True).scatter(rows, compute(rows).fill_null(otherwise))


def _visible_agree(left: pl.Series, right: pl.Series, where: pl.Series, parts: tuple[tuple[int, int], ...]) -> pl.Series:
    """Whether two strings agree on each (offset, length) part, for the pairs `where` says (masked ones: few)
    and false for the others, whose parts are never cut out."""
    def agree(rows: pl.Series) -> pl.Series:
        these_l, these_r = left.gather(rows), right.gather(rows)
        out = pl.repeat(True, len(rows), eager=True)
        for offset, length in parts:
            out = out & (these_l.str.slice(offset, length) == these_r.str.slice(offset, length))
        return out
    return _only_where(where, agree)


def _address_level() -> pl.Expr:
    c = pl.col
    return (
        pl.when(c("addr_canon_l").is_null() | c("addr_canon_r").is_null()).then(address_lv("missing"))
        .when(
            (c("addr_canon_l") == c("addr_canon_r"))
            | c("addr_canon_r").str.ends_with(c("addr_canon_l"))
            | c("addr_canon_l").str.ends_with(c("addr_canon_r"))
        ).then(address_lv("same"))
        .when(c("addr_block_l").is_not_null() & (c("addr_block_l") == c("addr_block_r"))).then(address_lv("building"))
        .otherwise(address_lv("different"))
    )


# What compare_exact_pairs reads of each side: 4 of the 13 identity columns compare_pairs reads.
EXACT_PAIR_COLUMNS = ["name_norm", "phone_norm", "addr_canon", "addr_block"]


def compare_exact_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """compare_pairs for the exact stage's pairs, which hold a third of all pairs: the same ID (checked, unique
    on the roster) and a name that reads the same. Their ID level is exact and their name level exact or
    homophone by construction, and birth and sex do not count once the ID has spoken (score_pairs,
    decide_links), so only the name's spelling, the phone and the address are compared. Gives the levels
    compare_pairs gives (tests/test_linking.py holds the two to each other); birth and sex are 'missing'."""
    if pairs.height == 0:
        return compare_pairs(pairs)
    c = pl.col
    p = pairs.with_columns(_phone_columns(pairs))
    return p.with_columns(
        id_lv("exact").alias("id_level"),
        pl.when(c("name_norm_l") == c("name_norm_r")).then(name_lv("exact")).otherwise(name_lv("homophone"))
        .alias("name_level"),
        _phone_level().alias("phone_level"),
        birth_lv("missing").alias("birth_level"),
        sex_lv("missing").alias("sex_level"),
        _address_level().alias("address_level"),
    ).drop(_PHONE_HELPERS)


def _name_edits(names_l: pl.Series, names_r: pl.Series, first_alike: pl.Series, placeholders: pl.Series,
                read: pl.Series) -> pl.Series:
    """The names' distance where they hold a placeholder, capped at 2 where they begin alike, hold none and
    `read` says a level may read it, 0 where they are equal, null elsewhere."""
    edits = osa_distances(names_l, names_r, where=placeholders > 0)
    close = (first_alike & (placeholders == 0) & read).fill_null(False).arg_true()
    return edits.scatter(close, osa_within_one(names_l.gather(close), names_r.gather(close)))


def compare_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """Adds one level column per field: id_level, name_level, phone_level, birth_level, sex_level,
    address_level (each an Enum of its LEVELS). Pure: same pairs in, same levels out, whatever the order."""
    if pairs.height == 0:
        return pairs.with_columns(
            [pl.lit(None, dtype=LEVEL_TYPES[f]).alias(f"{f}_level") for f in LEVELS]
        )
    # The ID and phone levels ask only whether the distance is at most one; the name levels read it only
    # where the names begin alike or hold a placeholder (wildcard, dropped, similar), and only the wildcard
    # level, for names with a placeholder, reads more than whether it is at most one. What several levels
    # read is computed once, as a column: a when/then chain evaluates every branch for every pair. What only
    # a later branch reads is worked out only for the pairs that can get there: the visible parts of masked
    # IDs and phones; the birth segments of IDs that do not both pass their check digit; whether names begin
    # alike, and their distance, where they differ and do not read alike (a homophone or loose level comes
    # first; most of the blocking's pairs are found by their names and read alike).
    names_l, names_r = pairs["name_norm_l"], pairs["name_norm_r"]
    sounds_alike = ((pairs["name_py_l"] == pairs["name_py_r"]).fill_null(False)
                    | (pairs["name_py_loose_l"] == pairs["name_py_loose_r"]).fill_null(False))
    read_edits = ~sounds_alike & (names_l != names_r)
    first_alike = _only_where(read_edits, lambda rows: names_l.gather(rows).str.slice(0, 1)
                              == names_r.gather(rows).str.slice(0, 1))
    placeholders = names_l.str.count_matches("?", literal=True) + names_r.str.count_matches("?", literal=True)
    bodies_l, bodies_r = pairs["id_body_l"], pairs["id_body_r"]
    masked = (bodies_l.str.contains("*", literal=True) | bodies_r.str.contains("*", literal=True)).fill_null(False)
    valid = (pairs["id_flag_l"].is_in(_VALID_ID) & pairs["id_flag_r"].is_in(_VALID_ID)).fill_null(False)
    segment = _only_where(bodies_l.is_not_null() & bodies_r.is_not_null() & ~valid, lambda rows: (
        bodies_l.gather(rows).str.slice(6, 8) == bodies_r.gather(rows).str.slice(6, 8)))
    c = pl.col
    p = pairs.with_columns(
        osa_within_one(bodies_l, bodies_r).alias("_id_dist"), valid.alias("_both_valid"),
        segment.alias("_birth_segment"),
        masked.alias("_masked_id"), _visible_agree(bodies_l, bodies_r, masked, _ID_VISIBLE).alias("_id_visible_agree"),
        *_phone_columns(pairs),
        _name_edits(names_l, names_r, first_alike, placeholders, read_edits).alias("_name_edit"),
        first_alike.alias("_first_alike"), placeholders.alias("_placeholders"),
        names_l.str.len_chars().cast(pl.Int32).alias("_len_l"), names_r.str.len_chars().cast(pl.Int32).alias("_len_r"),
        # Birth date and sex of a record come from its ID: a relative's ID says nothing about this person's.
        (c("household_ids_r").list.contains(c("id_norm_l")).fill_null(False)
         & (c("id_norm_l") != c("id_norm_r")).fill_null(True)).alias("_relatives"),
    )
    has_id = (c("id_body_l").is_not_null() | c("id_norm_l").is_not_null()) & (
        c("id_body_r").is_not_null() | c("id_norm_r").is_not_null()
    )
    relatives_id, masked_id, ends_agree = c("_relatives"), c("_masked_id"), c("_id_visible_agree")
    id_level = (
        pl.when(c("id_norm_l").is_not_null() & (c("id_norm_l") == c("id_norm_r"))).then(id_lv("exact"))
        .when(~has_id).then(id_lv("missing"))
        # A parent registering a child with their own ID: the ID says which family, not which member.
        .when(relatives_id).then(id_lv("household"))
        .when(masked_id & c("id_body_l").is_not_null() & c("id_body_r").is_not_null()).then(
            pl.when(ends_agree).then(id_lv("masked_agree")).otherwise(id_lv("mismatch")))
        .when(c("id_body_l").is_not_null() & c("id_body_r").is_not_null() & (c("_id_dist") <= 1)).then(id_lv("one_edit"))
        # Two IDs that both pass their check digit and differ by more than a typo are two people's, however
        # alike their birth segments: in a city of 20M, 5,325 visitors sharing a resident's name and birth date
        # were linked to that resident on the birth segment (a wrong "tested").
        .when(c("_both_valid")).then(id_lv("mismatch"))
        .when(c("_birth_segment")).then(id_lv("birth_segment"))
        .otherwise(id_lv("mismatch"))
    )
    wildcard = (c("_placeholders") > 0) & (c("_len_l") == c("_len_r")) & (c("_name_edit") <= c("_placeholders"))
    name_level = (
        pl.when(c("name_norm_l") == c("name_norm_r")).then(name_lv("exact"))
        .when(c("name_py_l") == c("name_py_r")).then(name_lv("homophone"))
        .when(wildcard).then(name_lv("wildcard"))
        .when(c("name_py_loose_l") == c("name_py_loose_r")).then(name_lv("loose"))
        # 王小明 typed 王明: one character left out, surname kept. Weak: only an ID or more makes it a link.
        .when(
            ((c("_len_l") - c("_len_r")).abs() == 1) & (pl.max_horizontal("_len_l", "_len_r") >= 3)
            & (c("_name_edit") == 1) & c("_first_alike")
        ).then(name_lv("dropped"))
        .when((c("_len_l") >= 3) & (c("_name_edit") <= 1) & c("_first_alike")).then(name_lv("similar"))
        .otherwise(name_lv("different"))
    )
    phone_level = _phone_level()
    births = c("id_birth_raw_l").is_not_null() & c("birth_r").is_not_null() & ~relatives_id
    # The birth segment of an ID whose check digit fails may hold the typo: it can confirm, never refute.
    record_birth_trusted = c("id_flag_l").is_in(_VALID_ID)
    birth_level = (
        pl.when(~births).then(birth_lv("missing"))
        .when(c("id_birth_raw_l") == c("birth_r")).then(birth_lv("equal"))
        .when(record_birth_trusted).then(birth_lv("different"))
        .otherwise(birth_lv("missing"))
    )
    sexes = c("sex_l").is_not_null() & c("sex_r").is_not_null() & ~relatives_id
    sex_level = (
        pl.when(~sexes).then(sex_lv("missing"))
        .when(c("sex_l") == c("sex_r")).then(sex_lv("equal"))
        .otherwise(sex_lv("different"))
    )
    address_level = _address_level()
    return p.with_columns(
        id_level.alias("id_level"), name_level.alias("name_level"), phone_level.alias("phone_level"),
        birth_level.alias("birth_level"), sex_level.alias("sex_level"), address_level.alias("address_level"),
    ).drop("_id_dist", "_both_valid", "_birth_segment", "_masked_id", "_id_visible_agree", *_PHONE_HELPERS, "_name_edit", "_first_alike", "_placeholders",
           "_len_l", "_len_r", "_relatives")


_ID_SPOKE = pl.col("id_level").is_in(["exact", "one_edit"])
LEVEL_COLUMNS = [f"{f}_level" for f in ("id", "name", "phone", "birth", "sex", "address")]


def score_pairs(compared: pl.DataFrame, settings: ScoreSettings) -> pl.DataFrame:
    """Adds score. Birth and sex count only where the ID did not already speak: an exact or one-edit ID
    already carries the birth date and sex inside it. The explanation is left to explain_levels, for the
    pairs that are kept: most of a record's candidates lose, and putting their words together cost as much
    as scoring them."""
    c = pl.col

    def weight(fieldname: str) -> pl.Expr:
        # The level's index into its Enum picks its weight (a level the settings leave out weighs 0).
        table = getattr(settings, fieldname)
        weights = pl.Series([float(table.get(level, 0.0)) for level in LEVELS[fieldname]], dtype=pl.Float64)
        return pl.lit(weights).gather(c(f"{fieldname}_level").cast(LEVEL_TYPES[fieldname]).to_physical())

    score = (
        weight("id") + weight("name") + weight("phone") + weight("address")
        + pl.when(_ID_SPOKE).then(0.0).otherwise(weight("birth"))
        + pl.when(_ID_SPOKE).then(0.0).otherwise(weight("sex"))
    )
    return compared.with_columns(score.alias("score"))


def explain_levels(scored: pl.DataFrame) -> pl.DataFrame:
    """Adds explanation: the levels in Chinese words, birth and sex only where the ID did not speak. Put
    together once per combination of levels (dozens to a few hundred among a slice's quarter of a million
    pairs) and taken to each pair by its combination's number: word by word for every pair it was a quarter
    of deciding the exact stage's pairs."""
    c = pl.col

    def words(fieldname: str, only: pl.Expr | None = None) -> pl.Expr:
        w = c(f"{fieldname}_level").replace_strict(EXPLAIN[fieldname], default="", return_dtype=pl.String)
        w = pl.when(w == "").then(None).otherwise(w)
        return w if only is None else pl.when(only).then(w).otherwise(None)

    explanation = pl.concat_str(
        [words("id"), words("name"), words("birth", ~_ID_SPOKE), words("sex", ~_ID_SPOKE), words("phone"),
         words("address")],
        separator="，",
        ignore_nulls=True,
    )
    # Each combination as one number, its levels' indices as digits (a null level as one more digit).
    combination = pl.lit(0, dtype=pl.UInt32)
    for fieldname, levels in LEVELS.items():
        index = c(f"{fieldname}_level").cast(LEVEL_TYPES[fieldname]).to_physical().cast(pl.UInt32)
        combination = combination * (len(levels) + 1) + index.fill_null(len(levels))
    numbers = scored.select(combination.alias("_combination"))["_combination"]
    first = numbers.is_first_distinct().arg_true()
    # Where each combination's words are, by its number (at most 35,840 numbers).
    slots = pl.repeat(None, math.prod(len(levels) + 1 for levels in LEVELS.values()), dtype=pl.UInt32, eager=True)
    slots = slots.scatter(numbers.gather(first), pl.int_range(0, first.len(), dtype=pl.UInt32, eager=True))
    words_of = scored[first].select(explanation.alias("explanation"))["explanation"]
    return scored.with_columns(words_of.gather(slots.gather(numbers)))
