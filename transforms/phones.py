"""Phone numbers as typed by volunteers: country prefixes, separators, full-width digits."""

from __future__ import annotations

from functools import partial

import polars as pl

from transforms.idcard import FULL_WIDTH
from transforms.plain_rows import by_plainness

PHONE_MOBILE = "mobile"
PHONE_LANDLINE = "landline"
PHONE_SUSPECT = "suspect"
PHONE_MISSING = "missing"
PHONE_MASKED = "masked"  # 138****5678: kept as typed, compared on the visible digits only
MASKED_PHONE = r"^1\d{2}\*{4}\d{4}$"
MOBILE = r"^1[3-9]\d{9}$"
TYPED_AS_MOBILE = r"^1[3-9][0-9]{9}$"  # ASCII digits only: \d also matches full-width ones, which need cleaning


def normalise_phones(frame: pl.DataFrame, *, col: str = "phone") -> pl.DataFrame:
    """Adds phone_norm (digits, no country prefix) and phone_flag.

    Only a well-formed mobile number is used as a blocking key; a 10- or 12-digit number is kept as
    'suspect' evidence for the comparison but never joined on. A mobile number typed as one (most are) is
    its own normal form.
    """
    def typed_as_mobile(rows: pl.DataFrame) -> pl.DataFrame:
        return rows.with_columns(pl.col(col).alias("phone_norm"), pl.lit(PHONE_MOBILE).alias("phone_flag"))

    return by_plainness(frame, frame[col].str.contains(TYPED_AS_MOBILE), typed_as_mobile, partial(_normalise, col=col))


def _normalise(frame: pl.DataFrame, *, col: str) -> pl.DataFrame:
    digits = (
        pl.col(col)
        .str.replace_many(list(FULL_WIDTH), list(FULL_WIDTH.values()))
        .str.replace_all(r"\D", "")
    )
    stripped = (
        pl.when(digits.str.contains(r"^(0086|86)1\d{10}$"))
        .then(digits.str.replace(r"^(0086|86)", ""))
        .otherwise(digits)
    )
    masked_text = pl.col(col).str.replace_all(r"[\s\-]", "").str.replace(r"^(\+?86|0086)", "")
    stripped = pl.when(masked_text.str.contains(MASKED_PHONE)).then(masked_text).otherwise(stripped)
    frame = frame.with_columns(stripped.alias("phone_norm"))
    p = pl.col("phone_norm")
    flag = (
        pl.when(p.is_null() | (p == ""))
        .then(pl.lit(PHONE_MISSING))
        .when(p.str.contains(MASKED_PHONE))
        .then(pl.lit(PHONE_MASKED))
        .when(p.str.contains(MOBILE))
        .then(pl.lit(PHONE_MOBILE))
        .when(p.str.contains(r"^0\d{9,11}$") | p.str.contains(r"^[2-8]\d{6,7}$"))
        .then(pl.lit(PHONE_LANDLINE))
        .otherwise(pl.lit(PHONE_SUSPECT))
    )
    return frame.with_columns(
        pl.when(p == "").then(None).otherwise(p).alias("phone_norm"), flag.alias("phone_flag"),
    )
