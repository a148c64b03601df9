"""Scoring a run against the generator's ground truth: the figures the tests and benchmarks report."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.contract import STATUS_IN_PLACE
from transforms.rules import Round, RuleSettings, vaccination_status


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 5), "recall": round(r, 5), "f1": round(f, 5)}


@dataclass(frozen=True)
class Truth:
    residents: pl.DataFrame  # resident_id, status, tags, birth_date, tested_in_round
    test_links: pl.DataFrame  # record_id, resident_id (null: not a resident), noise
    vaccination_links: pl.DataFrame


def link_scores(matches: pl.DataFrame | pl.LazyFrame, truth: Truth, quarantined: set[str] | None = None
                ) -> dict[str, dict]:
    """Per record kind: precision and recall of 'match' decisions against the true resident.

    Records the run quarantined (a broken row, or a time after as-of) never reach the matcher: they are
    counted apart, so the figures say how well the matcher did and how much input was unusable. matches
    may be a scan: only its keys and decisions are read, a kind at a time (a 20M city has 66 M)."""
    out = {}
    gone_ids = pl.Series(sorted(quarantined or ()), dtype=pl.String).implode()
    c = pl.col
    for kind, t in (("test", truth.test_links), ("vaccination", truth.vaccination_links)):
        gone = t.filter(c("record_id").is_in(gone_ids))
        t = t.filter(~c("record_id").is_in(gone_ids))
        mine = matches.lazy().filter(c("record_kind") == kind).select("record_id", "resident_id", "decision")
        m = mine.filter(c("decision") == "match").select("record_id", c("resident_id").alias("predicted"))
        pred, true = c("predicted"), c("resident_id")
        counts = t.lazy().join(m, on="record_id", how="left").select(
            (pred.is_not_null() & (pred == true)).sum().alias("tp"),
            (pred.is_not_null() & (pred != true).fill_null(True)).sum().alias("fp"),
            (true.is_not_null() & (pred.is_null() | (pred != true))).sum().alias("fn"),
        ).collect(engine="streaming").row(0, named=True)
        scores = _prf(*(int(counts[k] or 0) for k in ("tp", "fp", "fn")))
        possible = mine.filter(c("decision") == "possible").select(pl.len()).collect(engine="streaming").item()
        out[kind] = scores | {
            "possible": possible, "quarantined_records": gone.height,
            "quarantined_resident_records": gone.filter(c("resident_id").is_not_null()).height,
        }
    return out


def untested_scores(call_list: pl.DataFrame, truth: Truth, tested_only_in_quarantine: set[str] | None = None) -> dict:
    """Recall over the truly untested (any list, verify included: they get a call); precision over the
    firm lists. Residents whose every in-round test was quarantined are rightly listed from the run's
    point of view (the record is unusable until the staff fix it): precision is also given without them."""
    truly = truth.residents.filter((pl.col("status") == STATUS_IN_PLACE) & ~pl.col("tested_in_round"))
    truly_ids = set(truly["resident_id"].to_list())
    listed = call_list.filter(pl.col("reason") == "untested")
    any_list = set(listed["resident_id"].to_list())
    firm = set(listed.filter(pl.col("list") != "verify")["resident_id"].to_list())
    out_of_scope = set(
        truth.residents.filter(pl.col("status") != STATUS_IN_PLACE)["resident_id"].to_list()
    ) & set(call_list["resident_id"].to_list())
    recall = len(truly_ids & any_list) / len(truly_ids) if truly_ids else 1.0
    precision = len(firm & truly_ids) / len(firm) if firm else 1.0
    unusable = (tested_only_in_quarantine or set()) - truly_ids
    firm_usable = firm - unusable
    precision_usable = len(firm_usable & truly_ids) / len(firm_usable) if firm_usable else 1.0
    return {
        "truly_untested": len(truly_ids),
        "listed_call_or_home_visit": len(firm),
        "listed_verify": len(any_list - firm),
        "recall": round(recall, 5),
        "precision": round(precision, 5),
        "missed": len(truly_ids - any_list),
        "wrongly_listed": len(firm - truly_ids),
        "listed_because_test_quarantined": len(firm & unusable),
        "precision_excluding_quarantined": round(precision_usable, 5),
        "out_of_scope_listed": len(out_of_scope),
    }


def vaccination_scores(call_list: pl.DataFrame, roster_status: pl.DataFrame, truth: Truth, rnd: Round,
                       settings: RuleSettings, vaccinations: pl.DataFrame) -> dict:
    """Expected reasons come from the same rules applied to the true links.

    roster_status: resident_id, birth, tags, in_scope (as the run saw the roster)."""
    true_links = truth.vaccination_links.filter(pl.col("resident_id").is_not_null()).join(
        vaccinations.select("record_id", "vaccinated_at", "vaccine"), on="record_id", how="inner"
    ).with_columns(pl.lit("match").alias("decision"), pl.lit(0.0).alias("score"), pl.lit("").alias("candidate"))
    expected = vaccination_status(roster_status, true_links, rnd, settings).filter(
        pl.col("vaccination_reason").is_not_null()
    )
    exp = set(zip(expected["resident_id"].to_list(), expected["vaccination_reason"].to_list(), strict=True))
    # Verify-list rows are not a firm reason (the worker first settles the candidate record): they count
    # as misses of the expected reason, not as hits.
    rows = call_list.filter(pl.col("reason") != "untested")
    firm = rows.filter(pl.col("list") != "verify")
    got = set(zip(firm["resident_id"].to_list(), firm["reason"].to_list(), strict=True))
    return _prf(len(exp & got), len(got - exp), len(exp - got)) | {
        "expected": len(exp), "on_verify_list": rows.height - firm.height,
    }
