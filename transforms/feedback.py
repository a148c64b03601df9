"""What grid workers settled on the verify list, turned into confirmed and rejected pairs the matcher
obeys on the next run: a person a worker has called should not come back with the same question."""

from __future__ import annotations

import polars as pl

from transforms.contract import CALL_LIST, VERDICT_HEADER, VERDICT_OTHER, VERDICT_SAME
from transforms.decision import LINK_COLUMNS

CONFIRMED = "confirmed"
REJECTED = "rejected"
FEEDBACK_COLUMNS = ["record_kind", "record_id", "resident_id", "verdict", "source"]
_ZH = {c.name: c.zh for c in CALL_LIST.columns}


def verdicts_from_sheet(sheet: pl.DataFrame, source: str) -> pl.DataFrame:
    """A returned verify sheet (Chinese headers, as written; rows may be re-sorted or added to) to
    feedback rows. Rows without a verdict or a candidate record are skipped: nothing was settled."""
    rid, cand = _ZH["resident_id"], _ZH["candidate_record"]
    if not {rid, cand, VERDICT_HEADER} <= set(sheet.columns):
        return pl.DataFrame(schema={c: pl.String for c in FEEDBACK_COLUMNS})
    s = sheet.select(
        pl.col(rid).cast(pl.String).str.strip_chars().alias("resident_id"),
        pl.col(cand).cast(pl.String).str.strip_chars().alias("candidate"),
        pl.col(VERDICT_HEADER).cast(pl.String).str.strip_chars().alias("answer"),
    )
    verdict = (
        pl.when(pl.col("answer") == VERDICT_SAME).then(pl.lit(CONFIRMED))
        .when(pl.col("answer") == VERDICT_OTHER).then(pl.lit(REJECTED))
    )
    parts = pl.col("candidate").str.split_exact(":", 1)
    return (
        s.with_columns(verdict.alias("verdict"), parts.struct.field("field_0").alias("record_kind"),
                       parts.struct.field("field_1").alias("record_id"), pl.lit(source).alias("source"))
        .filter(pl.col("verdict").is_not_null() & pl.col("record_id").is_not_null()
                & pl.col("record_kind").is_in(["test", "vaccination"]) & pl.col("resident_id").is_not_null())
        .unique(["record_kind", "record_id", "resident_id"], keep="last", maintain_order=True)
        .select(FEEDBACK_COLUMNS)
    )


def apply_confirmations(links: pl.DataFrame, feedback: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """A confirmed pair is a link whatever the score said; it replaces the record's other decision.
    (Rejected pairs are removed before deciding, so the record can still find its real owner.)"""
    confirmed = (
        feedback.filter(pl.col("verdict") == CONFIRMED)
        .join(records.select("record_kind", "record_id"), on=["record_kind", "record_id"], how="semi")
        .unique(["record_kind", "record_id"], keep="last")
    )
    if confirmed.height == 0:
        return links
    keys = ["record_kind", "record_id"]
    kept = links.join(confirmed, on=keys, how="anti")
    scores = links.select(*keys, "resident_id", "score")
    added = confirmed.join(scores, on=[*keys, "resident_id"], how="left").select(
        *keys, "resident_id", pl.lit("worker_confirmed").alias("method"), pl.col("score").cast(pl.Float64),
        pl.lit("match").alias("decision"), pl.lit("网格员电话核实为本人").alias("explanation"),
    )
    return pl.concat([kept.select(LINK_COLUMNS), added.select(LINK_COLUMNS)], how="vertical_relaxed")


def reject_pairs_sql() -> str:
    """Run after candidate_pairs is built: a pair a worker said is not the person is never proposed."""
    return (
        "DELETE FROM candidate_pairs c USING (SELECT r._li, p._ri FROM link_feedback f "
        "JOIN records r ON r.record_kind = f.record_kind AND r.record_id = f.record_id "
        "JOIN residents p ON p.resident_id = f.resident_id WHERE f.verdict = 'rejected') x "
        "WHERE c._li = x._li AND c._ri = x._ri"
    )
