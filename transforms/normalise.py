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
# The input roles normalise_people reads: a row's normalised columns depend on these cells and nothing else.
NORMALISER_ROLES = (Role.ID_NUMBER, Role.ID_TYPE, Role.NAME, Role.PHONE, Role.ADDRESS, Role.BIRTH_DATE, Role.GENDER)
INPUT_KEY = ["_input_h1", "_input_h2"]  # a 128-bit key of a row's normaliser inputs, as two 64-bit hashes
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


def normaliser_inputs(contract: Contract) -> list[str]:
    return [c for c in (contract.by_role(r) for r in NORMALISER_ROLES) if c is not None]


def with_input_key(rows: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """The rows with INPUT_KEY, the key normalise_reusing looks their inputs up by.

    A 128-bit hash of the inputs, not the inputs themselves: a join on five text columns cost 4.6 s per
    million rows, on the hash 0.6 s. Two distinct inputs share a key with a chance of about n^2 / 2^129
    (1e-24 for 26 million)."""
    cells = rows.select(normaliser_inputs(contract))
    return rows.with_columns(cells.hash_rows(seed=1).alias(INPUT_KEY[0]), cells.hash_rows(seed=2).alias(INPUT_KEY[1]))


def normalise_reusing(keyed: pl.DataFrame, contract: Contract, known: pl.LazyFrame | None,
                      names_met: NamesMet | None = None) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """What normalise_people gives for rows (`keyed`: with_input_key's), normalising only the inputs not in
    `known` (INPUT_KEY -> NORMALISED_COLUMNS, kept from the last refresh). Returns the normalised rows, the
    table to keep for the next refresh (the inputs of these rows and nothing else, so it never outgrows the
    current exports), and how many distinct inputs were normalised now. A two-hourly refresh thus normalises
    only new records."""
    todo = keyed.select(*INPUT_KEY, *normaliser_inputs(contract)).unique(subset=INPUT_KEY)
    parts = []
    if known is not None:
        # Lazy: only the rows still wanted are ever materialised, not the whole table and then its part.
        parts.append(known.join(todo.select(INPUT_KEY).lazy(), on=INPUT_KEY, how="semi")
                     .select(*INPUT_KEY, *NORMALISED_COLUMNS).collect())
        todo = todo.join(parts[0].select(INPUT_KEY), on=INPUT_KEY, how="anti")
    fresh = todo.height
    if fresh or not parts:
        parts.append(normalise_people(todo, contract, names_met).select(*INPUT_KEY, *NORMALISED_COLUMNS))
    table = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
    out = keyed.join(table, on=INPUT_KEY, how="left", maintain_order="left").drop(INPUT_KEY)
    return out, table, fresh
