"""Linked records with the facts the rules and the verify list need: when, where, which vaccine."""

from __future__ import annotations

import polars as pl

from transforms.idcard import mask_id


def _candidate_text(when: str, extra: list[pl.Expr]) -> pl.Expr:
    return pl.concat_str(
        [
            pl.col("name"),
            pl.when(mask_id("id_clean") != "").then(pl.lit("证件") + mask_id("id_clean")),
            pl.col(when).dt.strftime("%m-%d %H:%M"),
            *extra,
            pl.lit("（") + pl.col("explanation") + pl.lit("）"),
        ],
        separator=" ",
        ignore_nulls=True,
    )


def _evidence(links: pl.DataFrame | pl.LazyFrame, records: pl.DataFrame | pl.LazyFrame, kind: str, keep: list[str],
              shown: list[str]) -> pl.LazyFrame:
    """The linked records of one kind with the facts the rules read (keep, the record's time first), and the
    candidate text of 'possible' links (the verify list, showing the time and the columns in shown): written
    for those alone, not for the millions of matched records of a city.
    Lazy, so only the columns named are ever joined (or read, when records is a scan of the facts on disk):
    at 2M residents the eager join of whole link rows raised the process's peak by 1.7 GB. A plan, so the
    rules number it by part in the same collect (at 20M, 64 M rows not held twice)."""
    when = keep[0]
    mine = links.lazy().filter(pl.col("record_kind") == kind)
    possible = (
        mine.filter(pl.col("decision") == "possible").select("record_id", "explanation")
        .join(records.lazy().select("record_id", "name", "id_clean", *dict.fromkeys([when, *shown])),
              on="record_id", how="inner")
        .select("record_id", _candidate_text(when, [pl.col(c) for c in shown]).alias("candidate"))
    )
    return (
        mine.select("resident_id", "record_id", "decision", "score")
        .join(records.lazy().select("record_id", *keep), on="record_id", how="inner")
        .join(possible, on="record_id", how="left", maintain_order="left")
    )


def test_evidence(links: pl.DataFrame | pl.LazyFrame, tests: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """The plan of resident_id, record_id, decision, score, sampled_at, candidate (null unless possible)."""
    return _evidence(links, tests, "test", ["sampled_at"], ["site"]).select(
        "resident_id", "record_id", "decision", "score", "sampled_at", "candidate")


def vaccination_evidence(links: pl.DataFrame | pl.LazyFrame,
                         vaccinations: pl.DataFrame | pl.LazyFrame | None) -> pl.LazyFrame:
    """The plan of resident_id, record_id, decision, score, vaccinated_at, vaccine, candidate."""
    schema = {"resident_id": pl.String, "record_id": pl.String, "decision": pl.String, "score": pl.Float64,
              "vaccinated_at": pl.Datetime("us"), "vaccine": pl.String, "candidate": pl.String}
    if vaccinations is None:
        return pl.LazyFrame(schema=schema)
    return _evidence(links, vaccinations, "vaccination", ["vaccinated_at", "vaccine"], ["vaccine"]).select(
        list(schema))
