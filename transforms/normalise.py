"""All field normalisers applied to one table, in the one shape the linker reads from both sides."""

from __future__ import annotations

import polars as pl

from transforms.addresses import normalise_addresses
from transforms.contract import Contract, Role
from transforms.idcard import normalise_ids
from transforms.names import normalise_names
from transforms.phones import normalise_phones

# What the linker sees of a person, from the roster and from a record alike.
IDENTITY_COLUMNS = [
    "name_norm", "name_py", "name_py_loose", "id_norm", "id_body", "id_flag", "id_birth_raw",
    "birth", "sex", "phone_norm", "phone_flag", "addr_canon", "addr_block",
]
# Of the roster's normalised columns, those only linking reads: dropped once it is done, so the resident
# status built from the roster (a row per resident, 60 columns) does not carry them through the rules.
LINKING_ONLY_COLUMNS = ["name_norm", "name_py_loose", "id_body", "id_flag", "id_birth", "id_sex", "id_birth_raw",
                        "sex", "phone_norm", "phone_flag", "addr_place"]


def _by_distinct(frame: pl.DataFrame, col: str, normalise) -> pl.DataFrame:
    """Normalises each distinct value of col once and joins the result back: a household shares one
    address and a person's records repeat one name, so there are half as many distinct texts as rows
    and the regex and pinyin passes cost per text."""
    distinct = normalise(frame.select(col).unique())
    return frame.join(distinct, on=col, how="left", nulls_equal=True, maintain_order="left")


def normalise_people(rows: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """Keeps every input column and adds the identity columns above plus building/unit/room."""
    def role(r: Role) -> str | None:
        return contract.by_role(r)

    out = normalise_ids(rows, id_col=role(Role.ID_NUMBER), type_col=role(Role.ID_TYPE))
    name = role(Role.NAME)
    out = _by_distinct(out, name, lambda names: normalise_names(names, col=name))
    out = normalise_phones(out, col=role(Role.PHONE))
    addr = role(Role.ADDRESS)
    if addr is not None:
        out = _by_distinct(out, addr, lambda addresses: normalise_addresses(addresses, col=addr))
    else:
        out = out.with_columns(
            [pl.lit(None, dtype=pl.String).alias(c) for c in ("addr_canon", "addr_place", "building", "unit", "room",
                                                               "addr_block")]
        )
    birth_col, gender_col = role(Role.BIRTH_DATE), role(Role.GENDER)
    birth = pl.col("id_birth")
    if birth_col is not None:
        birth = pl.coalesce(pl.col(birth_col), birth)
    sex = pl.col("id_sex")
    if gender_col is not None:
        # The ID is the more reliable source of sex; the typed gender fills in where there is none.
        sex = pl.coalesce(sex, pl.col(gender_col))
    return out.with_columns(birth.alias("birth"), sex.alias("sex"))
