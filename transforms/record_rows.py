"""What loading makes of each test or vaccination record: the rows linking reads, and the facts the rules
read once it is linked. Its own module, apart from the rules' evidence (transforms.evidence), because the
loaded sources are kept under a fingerprint of the code that made them (flows.loaded_sources): a change to
how the rules read the evidence must not make a refresh read a city's exports again."""

from __future__ import annotations

import polars as pl

# A record's key, on disk and through linking. Here, not with the linking code that reads it: the loaded
# sources' fingerprint covers what the loading modules import (flows.record_spill writes the key), and a
# change to how pairs are compared must relink the records, not make a refresh read a city's exports again.
KEYS = ["record_kind", "record_id"]
# What the rules, the verify list and the unregistered list read of a test or vaccination record once it
# is linked. A city's records are tens of millions of rows: the raw ID, its parts, the parsed address and
# the line number (kept by quarantine, not needed by a used row) are dropped as soon as they are not needed.
RECORD_FACTS = ["record_id", "name", "phone", "id_clean", "address", "site", "sampled_at", "vaccinated_at", "dose",
                "vaccine", "addr_block"]


def record_facts(records: pl.DataFrame, keep: list[str] = ()) -> pl.DataFrame:
    """The record's facts (RECORD_FACTS) and the columns in keep, in the frame's order."""
    wanted = set(RECORD_FACTS) | set(keep)
    return records.select([c for c in records.columns if c in wanted])


def linking_rows(records: pl.DataFrame, kind: str, identity: list[str]) -> pl.DataFrame:
    """One kind of record as linking reads it: keyed by (record_kind, record_id), with its identity columns."""
    return records.select(pl.lit(kind).alias("record_kind"), "record_id", *identity)


def with_row_hash(rows: pl.DataFrame, identity: list[str]) -> pl.DataFrame:
    """A hash of the identity columns: a record whose hash is unchanged keeps its stored decision."""
    return rows.with_columns(rows.select(identity).hash_rows(seed=0).alias("row_hash"))


def records_for_linking(tests: pl.DataFrame, vaccinations: pl.DataFrame | None, identity: list[str]) -> pl.DataFrame:
    """Both kinds of record in one frame keyed by (record_kind, record_id)."""
    frames = [linking_rows(tests, "test", identity)]
    if vaccinations is not None:
        frames.append(linking_rows(vaccinations, "vaccination", identity))
    return pl.concat(frames, how="vertical_relaxed")
