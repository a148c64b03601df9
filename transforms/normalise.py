"""All field normalisers applied to one table, in the one shape the linker reads from both sides."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import polars as pl

from transforms.addresses import normalise_addresses
from transforms.contract import Contract, Role
from transforms.idcard import normalise_ids
from transforms.names import NamesMet, normalise_names
from transforms.phones import normalise_phones

# What the linker sees of a person, from the roster and from a record alike.
IDENTITY_COLUMNS = [
    "name_norm", "name_py", "name_py_loose", "id_norm", "id_body", "id_flag", "id_birth_raw",
    "birth", "sex", "phone_norm", "phone_flag", "addr_canon", "addr_block",
]
# Every column normalise_people adds, in the order it adds them.
NORMALISED_COLUMNS = ["id_clean", "id_flag", "id_norm", "id_body", "id_birth", "id_sex", "id_birth_raw", "name_norm",
                      "name_py", "name_py_loose", "phone_norm", "phone_flag", "addr_canon", "addr_place", "building",
                      "unit", "room", "addr_block", "birth", "sex"]
# What normalise_addresses adds (all null where a source has no address).
ADDRESS_COLUMNS = ["addr_canon", "addr_place", "building", "unit", "room", "addr_block"]
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


def normalise_people(rows: pl.DataFrame, contract: Contract, names_met: NamesMet | None = None) -> pl.DataFrame:
    """Keeps every input column and adds the identity columns above plus building/unit/room. names_met: the
    names normalised earlier in the refresh, taken from there (and the new ones added).

    The four normalisers read disjoint columns, so they run side by side on two threads (polars lets go
    of the GIL): one after another they kept one core of two busy while loading."""
    def role(r: Role) -> str | None:
        return contract.by_role(r)

    id_col, type_col, name, phone, addr = (role(r) for r in (Role.ID_NUMBER, Role.ID_TYPE, Role.NAME, Role.PHONE,
                                                            Role.ADDRESS))

    def ids() -> pl.DataFrame:
        return normalise_ids(rows.select(id_col, type_col), id_col=id_col, type_col=type_col)

    def names() -> pl.DataFrame:
        read = names_met.normalise if names_met is not None else lambda d, col: normalise_names(d, col=col)
        return _by_distinct(rows.select(name), name, lambda distinct: read(distinct, name))

    def phones() -> pl.DataFrame:
        return normalise_phones(rows.select(phone), col=phone)

    def addresses() -> pl.DataFrame:
        if addr is None:
            return pl.DataFrame([pl.repeat(None, rows.height, dtype=pl.String, eager=True).alias(c)
                                 for c in ADDRESS_COLUMNS])
        return _by_distinct(rows.select(addr), addr, lambda distinct: normalise_addresses(distinct, col=addr))

    # Longest first (the addresses' regex passes are half the work), so the other thread takes the rest;
    # the columns are then added in NORMALISED_COLUMNS' order.
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = {job: pool.submit(job) for job in (addresses, ids, names, phones)}
        added = [running[job].result().drop(rows.columns, strict=False) for job in (ids, names, phones, addresses)]
    out = pl.concat([rows, *added], how="horizontal")
    birth_col, gender_col = role(Role.BIRTH_DATE), role(Role.GENDER)
    birth = pl.col("id_birth")
    if birth_col is not None:
        birth = pl.coalesce(pl.col(birth_col), birth)
    sex = pl.col("id_sex")
    if gender_col is not None:
        # The ID is the more reliable source of sex; the typed gender fills in where there is none.
        sex = pl.coalesce(sex, pl.col(gender_col))
    return out.with_columns(birth.alias("birth"), sex.alias("sex"))
