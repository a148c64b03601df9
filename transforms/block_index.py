"""The roster's blocking keys as sorted hashes: the residents a small batch of records can meet.

Each blocking rule (transforms.linking) joins the whole roster: at 20M residents the nine joins took
4.0-6.0 s for the 0.2 M records a two-hour refresh leaves to blocking, nearly all of it reading 20 M rows
to find the 2 M or so that share a key with one of them. Here each key of the roster is hashed once and
kept sorted, so those residents are found by binary search; the rules then join only them.

The residents found are a superset of those any rule can propose: every pair the joins make has equal
keys, so equal hashes; a hash that collides, or a record filter left out here, only adds residents the
joins then turn down. So the pairs, and every decision, are those the whole roster gives
(tests/test_block_index.py checks it on noisy data).

The hashes are DuckDB's `hash()` of the very expressions the rules compare, on both sides, so a type the
join casts is cast alike. Tables read: `residents` and the roster key tables of transforms.linking
(phone_keys, phone_households, name_keys, resident_id_probes) to build; `pending_records` and `id_probes`
to look up.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class KeyIndex:
    """One key of the roster, for one blocking rule (transforms.linking.RULE_NAMES): `roster` gives h (the
    key's hash) and v (the resident's _ri, or, where `leads_to` names another index, the hash that index is
    searched by); `records`, the hashes a batch looks up (None: reached only through another index)."""

    name: str
    rule: str
    roster: str
    records: str | None
    leads_to: str | None = None


INDEXES = (
    # rule "id": a record's ID and its checked neighbours (id_probes) against the residents' IDs, and the
    # neighbours of a resident's flagged ID (resident_id_probes) against the record's ID
    KeyIndex("id_body", "id", "SELECT hash(id_body) AS h, _ri AS v FROM residents WHERE id_body IS NOT NULL",
             "SELECT hash(probe) AS h FROM id_probes"),
    KeyIndex("id_probe", "id", "SELECT hash(probe) AS h, _ri AS v FROM resident_id_probes",
             "SELECT hash(id_body) AS h FROM pending_records WHERE id_body IS NOT NULL"),
    # rule "id_other": an ID that is not a mainland ID card
    KeyIndex("id_norm", "id_other", "SELECT hash(id_norm) AS h, _ri AS v FROM residents WHERE id_norm IS NOT NULL",
             "SELECT hash(id_norm) AS h FROM pending_records WHERE id_body IS NULL AND id_norm IS NOT NULL"),
    # rule "phone": only the phones few enough residents share (phone_keys)
    KeyIndex("phone", "phone", "SELECT hash(p.phone_norm) AS h, p._ri AS v FROM residents p "
             "SEMI JOIN phone_keys k ON p.phone_norm = k.phone_norm",
             "SELECT hash(phone_norm) AS h FROM pending_records WHERE phone_norm IS NOT NULL"),
    # rule "household": the phone leads to the addresses it lives at, each address to its residents
    KeyIndex("phone_household", "household", "SELECT hash(phone_norm) AS h, hash(addr_canon) AS v FROM phone_households",
             "SELECT hash(phone_norm) AS h FROM pending_records WHERE phone_norm IS NOT NULL", "address"),
    KeyIndex("address", "household", "SELECT hash(addr_canon) AS h, _ri AS v FROM residents WHERE addr_canon IS NOT NULL",
             None),
    # rule "masked_id": the loose name with the ID's last four (its region is tested by the join)
    KeyIndex("masked_id", "masked_id", "SELECT hash(name_py_loose, substr(id_body, 15, 4)) AS h, _ri AS v FROM residents "
             "WHERE name_py_loose IS NOT NULL AND id_body IS NOT NULL",
             "SELECT hash(name_py_loose, substr(id_body, 15, 4)) AS h FROM pending_records WHERE id_flag = 'masked'"),
    KeyIndex("name_birth", "name_birth", "SELECT hash(name_py, birth) AS h, _ri AS v FROM residents "
             "WHERE name_py IS NOT NULL AND birth IS NOT NULL",
             "SELECT hash(name_py, id_birth_raw) AS h FROM pending_records "
             "WHERE name_py IS NOT NULL AND id_birth_raw IS NOT NULL"),
    KeyIndex("loose_name_birth", "loose_name_birth", "SELECT hash(name_py_loose, birth) AS h, _ri AS v FROM residents "
             "WHERE name_py_loose IS NOT NULL AND birth IS NOT NULL",
             "SELECT hash(name_py_loose, id_birth_raw) AS h FROM pending_records "
             "WHERE name_py_loose IS NOT NULL AND id_birth_raw IS NOT NULL"),
    KeyIndex("name_building", "name_building", "SELECT hash(name_py, addr_block) AS h, _ri AS v FROM residents "
             "WHERE name_py IS NOT NULL AND addr_block IS NOT NULL",
             "SELECT hash(name_py, addr_block) AS h FROM pending_records "
             "WHERE name_py IS NOT NULL AND addr_block IS NOT NULL"),
    # rule "name": only the names few enough residents share (name_keys)
    KeyIndex("name", "name", "SELECT hash(p.name_py) AS h, p._ri AS v FROM residents p "
             "SEMI JOIN name_keys k ON p.name_py = k.name_py",
             "SELECT hash(name_py) AS h FROM pending_records WHERE name_py IS NOT NULL"),
    # the exact stage: the residents whose checked ID no one else on the roster has (unique_residents), by
    # that ID; looked up with EXACT_PROBES, before the blocking stage
    KeyIndex("unique_id", "exact", "SELECT hash(id_norm) AS h, _ri AS v FROM unique_residents", None),
)
EXACT_PROBES = "SELECT hash(id_norm) AS h FROM records WHERE id_norm IS NOT NULL"
# unique_residents' columns (transforms.linking), as the roster gives them for a resident whose ID is unique
UNIQUE_COLUMNS = ("id_norm", "name_py", "_ri")

# A batch with more pending records than this share of the roster is blocked against the whole roster:
# its keys meet most residents anyway, and a full refresh never pays for building the index.
NARROW_BELOW_SHARE = 0.1


def worth_narrowing(pending: int, residents: int) -> bool:
    return pending <= residents * NARROW_BELOW_SHARE


def probes_sql() -> str:
    """Every index's hashes for the batch in `pending_records` (and its `id_probes`), in one query: ix, h."""
    return "\nUNION ALL\n".join(f"SELECT '{ix.name}' AS ix, h FROM ({ix.records})" for ix in INDEXES if ix.records)


def _short(hashes: pl.Series | pl.Expr) -> pl.Series | pl.Expr:
    """A hash's top 32 bits: half the index's size, for about one resident more in 200 met by chance (20 M
    keys among 2^32 values), which the joins turn down."""
    return (hashes // (1 << 32)).cast(pl.UInt32)


@dataclass(frozen=True)
class SortedKeys:
    """One index: its short hashes sorted (keys, one per value: most keys have one resident, so a list of
    where each key's values begin would make the index half as big again, and it is read whole every
    batch), and the values in the keys' order."""

    keys: np.ndarray  # uint32
    values: np.ndarray  # uint32

    def values_of(self, wanted: np.ndarray) -> np.ndarray:
        """Every value whose key is one of wanted (sorted, unique): a binary search for each end of its run."""
        lo = np.searchsorted(self.keys, wanted, side="left")
        lengths = np.searchsorted(self.keys, wanted, side="right") - lo
        # positions lo[i] .. lo[i] + lengths[i] - 1 for every i, flattened
        return self.values[np.repeat(lo - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))]


def sorted_index(pairs: pl.DataFrame) -> SortedKeys:
    """A roster query's (h, v) as a SortedKeys of short hashes (v: _ri, or a short hash)."""
    v = pl.col("v")
    pairs = pairs.select(h=_short(pl.col("h")), v=_short(v) if pairs.schema["v"] == pl.UInt64 else v.cast(pl.UInt32))
    pairs = pairs.sort("h")
    return SortedKeys(pairs["h"].to_numpy(), pairs["v"].to_numpy())


def _distinct(values: np.ndarray) -> np.ndarray:
    """The values sorted, each once: np.unique (numpy 2.4) took 4.4 s for the 4.3 M residents a 20M city's
    batch met, sorting them 0.2."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if len(ordered) else ordered


def unique_residents_met(index: dict[str, SortedKeys], probes: pl.DataFrame) -> np.ndarray:
    """The _ri (sorted, unique) of the residents of unique_residents whose ID's hash is one of a batch's
    records' (probes: h, from EXACT_PROBES): the exact stage's join needs no others."""
    return _distinct(index["unique_id"].values_of(_distinct(_short(probes["h"]).to_numpy())))


def residents_met(index: dict[str, SortedKeys], probes: pl.DataFrame) -> np.ndarray:
    """The _ri (sorted, unique) of every resident whose key in some index is one a record looks up
    (probes: ix, h, from probes_sql). The indexes are searched two at a time (numpy lets go of the
    interpreter while it searches: 0.35 s against 0.68 for ten indexes of 20 M keys)."""
    by_index = {name: frame["h"] for (name,), frame in probes.partition_by("ix", as_dict=True).items()}
    by_name = {ix.name: ix for ix in INDEXES}

    def met_by(ix: KeyIndex) -> np.ndarray:
        wanted = _distinct(_short(by_index[ix.name]).to_numpy())
        while True:
            found = index[ix.name].values_of(wanted)
            if ix.leads_to is None:
                return found
            ix, wanted = by_name[ix.leads_to], _distinct(found)

    with ThreadPoolExecutor(max_workers=2) as pool:
        met = list(pool.map(met_by, [ix for ix in INDEXES if ix.name in by_index]))
    return _distinct(np.concatenate(met)) if met else np.empty(0, dtype=np.uint32)
