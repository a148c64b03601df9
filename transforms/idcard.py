"""Chinese resident ID numbers (GB 11643-1999): cleaning, ISO 7064 MOD 11-2 check, 15-to-18 upgrade.

An ID is used as an exact key only when it is well formed and its check digit holds. A suspicious one
(bad check digit, Excel scientific notation, wrong length) is kept as evidence for fuzzy matching but
never joined on exactly.
"""

from __future__ import annotations

import polars as pl

from transforms.contract import RESIDENT_ID_CARD

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"

FULL_WIDTH = {chr(0xFF10 + i): str(i) for i in range(10)} | {"Ｘ": "X", "ｘ": "X", "－": "-"}

# Flags, worst first; the sheet and the matcher explain themselves with these.
ID_OK = "ok"
ID_UPGRADED = "upgraded_15"
ID_BAD_CHECK = "bad_check_digit"
ID_EXCEL = "excel_mangled"
ID_MALFORMED = "malformed"
ID_MISSING = "missing"
ID_MASKED = "masked"  # 440305********123X: exports that hide the middle for privacy
MASKED_PATTERN = r"^\d{6}\*{4,12}\d{3}[\dX]$"


def check_digit(body17: str) -> str:
    """The 18th character for a 17-digit body (scalar; for tests and the generator)."""
    total = sum(int(d) * w for d, w in zip(body17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def is_valid_id(id18: str) -> bool:
    return len(id18) == 18 and id18[:17].isdigit() and check_digit(id18[:17]) == id18[17].upper()


def upgrade_15(id15: str) -> str:
    """Legacy 15-digit IDs omit the century (always 19) and the check digit."""
    body = id15[:6] + "19" + id15[6:]
    return body + check_digit(body)


def _check_char_expr(body17: pl.Expr) -> pl.Expr:
    """The check character of 17-digit bodies given as one integer (17 digits fit 64 bits; the caller makes
    that integer a column: read inside this expression the text was parsed once per digit). The digits are
    taken from the integer, not from 17 one-character slices: integer arithmetic costs a tenth as much."""
    total = pl.sum_horizontal([(body17 // 10 ** (16 - i)) % 10 * w for i, w in enumerate(WEIGHTS)])
    return pl.lit(CHECK_CHARS).str.slice(total % 11, 1)


def clean_id_expr(col: str) -> pl.Expr:
    """Spaces, dashes, full-width digits and a lower-case x are typing noise, not part of the ID."""
    return (
        pl.col(col)
        .str.replace_many(list(FULL_WIDTH), list(FULL_WIDTH.values()))
        .str.replace_all(r"[\s\-\u3000]", "")
        .str.to_uppercase()
    )


def normalise_ids(frame: pl.DataFrame, *, id_col: str = "id_number", type_col: str = "id_type") -> pl.DataFrame:
    """Adds id_clean, id_norm (exact key or null), id_body (18-char candidate for near matching),
    id_flag, id_birth (date) and id_sex ('男'/'女').

    Each intermediate is a column computed once (the check character for every body, 18 digits or 15
    upgraded, in one pass): a when/then chain evaluates all its branches for every row, so an expression
    repeated inside several chains is paid for each time."""
    c = pl.col("id_clean")
    out = frame.with_columns(
        clean_id_expr(id_col).alias("id_clean"),
        (pl.col(type_col).fill_null(RESIDENT_ID_CARD) == RESIDENT_ID_CARD).alias("_is_card"),
    ).with_columns(
        c.str.contains(r"^\d{17}[\dX]$").alias("_is18"),
        c.str.contains(r"^\d{15}$").alias("_is15"),
    )
    is18, is15 = pl.col("_is18"), pl.col("_is15")
    # An 18-digit ID's first 17 digits; a 15-digit one's with the century (always 19) put in.
    out = out.with_columns(
        pl.when(is18).then(c.str.slice(0, 17)).when(is15).then(c.str.slice(0, 6) + pl.lit("19") + c.str.slice(6, 9))
        .alias("_body17"))
    out = out.with_columns(pl.col("_body17").cast(pl.UInt64, strict=False).alias("_body17_n"))
    out = out.with_columns(_check_char_expr(pl.col("_body17_n")).alias("_check"))
    out = out.with_columns(
        pl.when(is18).then(c).when(is15).then(pl.col("_body17") + pl.col("_check")).alias("_body18"),
        pl.col("_body17").str.slice(6, 8).str.to_date("%Y%m%d", strict=False).alias("_birth"),
    )
    b, birth = pl.col("_body18"), pl.col("_birth")
    check_ok = pl.col("_check") == b.str.slice(17, 1)
    card_flag = (
        pl.when(c.is_null() | (c == ""))
        .then(pl.lit(ID_MISSING))
        .when(c.str.contains(r"^\d(\.\d+)?E\+?\d+$"))
        .then(pl.lit(ID_EXCEL))
        .when(c.str.contains(MASKED_PATTERN))
        .then(pl.lit(ID_MASKED))
        .when(is15 & birth.is_not_null())
        .then(pl.lit(ID_UPGRADED))
        .when(is18 & check_ok & birth.is_not_null())
        .then(pl.lit(ID_OK))
        .when(is18)
        .then(pl.lit(ID_BAD_CHECK))
        .otherwise(pl.lit(ID_MALFORMED))
    )
    other_flag = (
        pl.when(c.is_null() | (c == ""))
        .then(pl.lit(ID_MISSING))
        .when(c.str.contains(r"^[A-Z0-9]{5,20}$"))
        .then(pl.lit(ID_OK))
        .otherwise(pl.lit(ID_MALFORMED))
    )
    out = out.with_columns(pl.when(pl.col("_is_card")).then(card_flag).otherwise(other_flag).alias("id_flag"))
    card = pl.col("_is_card")
    out = out.with_columns(pl.col("id_flag").is_in([ID_OK, ID_UPGRADED]).alias("_usable"))
    usable = pl.col("_usable")
    card_usable = card & usable
    return out.with_columns(
        pl.when(card_usable).then(b)
        .when(~card & usable).then(pl.col(type_col) + pl.lit(":") + c)
        .otherwise(None).alias("id_norm"),
        # A masked ID keeps its visible ends (6 + 4) in the 18-character shape, for a partial comparison.
        pl.when(card & (pl.col("id_flag") == ID_MASKED))
        .then(c.str.slice(0, 6) + pl.lit("*" * 8) + c.str.slice(-4, 4))
        .when(card).then(b).otherwise(None).alias("id_body"),
        pl.when(card_usable).then(birth).otherwise(None).alias("id_birth"),
        pl.when(card_usable)
        .then(pl.when(b.str.slice(16, 1).cast(pl.Int32, strict=False) % 2 == 1).then(pl.lit("男")).otherwise(pl.lit("女")))
        .otherwise(None)
        .alias("id_sex"),
        # The birth segment of a mistyped ID is still evidence (most typos fall elsewhere).
        pl.when(card).then(birth).otherwise(None).alias("id_birth_raw"),
    ).drop("_is_card", "_is18", "_is15", "_body17", "_body17_n", "_check", "_body18", "_birth", "_usable")


def mask_id(col: str) -> pl.Expr:
    """Sheets show the first 6 and last 4 characters: enough to confirm on the phone, not to misuse."""
    c = pl.col(col)
    n = c.str.len_chars()
    return (
        pl.when(c.is_null() | (c == ""))
        .then(pl.lit(""))
        .when(n > 10)
        .then(c.str.slice(0, 6) + pl.lit("*").repeat_by(n - 10).list.join("") + c.str.slice(-4, 4))
        .otherwise(pl.lit("*").repeat_by(n).list.join(""))
    )
