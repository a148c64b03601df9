"""A digest of everything one resident's ruling reads: their roster row, their linked records and their
call outcomes. A resident whose digest is the one their kept products were made with is not ruled again
(transforms.rule_parts); the round, the rules' settings and code are the kept products' key, not part of it.

Each linked record adds its row's hash to its resident's sum (a wrapping sum: the same records in any
order give the same digest, and a record added, dropped or changed changes it).
"""

from __future__ import annotations

import polars as pl

# Different seeds for different inputs, so a test record and a vaccination record never stand for each other.
_SEEDS = {"roster": 0, "tests": 1, "vaccinations": 2, "outcomes": 3}


def row_hashes(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """resident_id and the hash of each whole row."""
    return frame.select("resident_id", frame.hash_rows(seed=seed).alias("h"))


def evidence_sums(evidence: pl.DataFrame, name: str) -> pl.DataFrame:
    """Per resident: how many rows of this input are theirs and the wrapping sum of their hashes."""
    return row_hashes(evidence, _SEEDS[name]).group_by("resident_id").agg(
        pl.len().alias(f"{name}_n"), pl.col("h").sum().alias(f"{name}_h"))


def roster_hashes(residents: pl.DataFrame) -> pl.DataFrame:
    """resident_id and the hash of the resident's roster row (a part of the roster at a time)."""
    return row_hashes(residents, _SEEDS["roster"]).rename({"h": "roster_h"})


def resident_digests(roster: pl.DataFrame, test_evidence: pl.DataFrame, vaccination_evidence: pl.DataFrame,
                     outcomes: pl.DataFrame | None) -> pl.DataFrame:
    """roster: roster_hashes of every resident. Returns resident_id, digest, in the roster's order."""
    if outcomes is None:  # no calls yet: the same digest as a round whose calls have none of theirs
        outcomes = pl.DataFrame(schema={"resident_id": pl.String})
    inputs = [evidence_sums(test_evidence, "tests"), evidence_sums(vaccination_evidence, "vaccinations"),
              evidence_sums(outcomes, "outcomes")]
    joined = roster
    for sums in inputs:
        joined = joined.join(sums, on="resident_id", how="left", maintain_order="left")
    parts = [c for c in joined.columns if c != "resident_id"]
    return joined.select("resident_id", pl.struct(parts).hash(seed=0).alias("digest"))
