"""Scoring a finished run's outputs against the ground truth the generator wrote (tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from flows.match_parts import scan_matches
from flows.readers import SLICE_ROWS, open_table
from flows.settings import Settings
from transforms.contract import ROSTER, STATUS_IN_PLACE, TESTS, VACCINATIONS, Contract
from transforms.evaluation import Truth, link_scores, untested_scores, vaccination_scores
from transforms.normalise import normalise_people
from transforms.parsing import SliceParser, parse_datetime_expr


def load_truth(data_dir: Path, *, noise: bool = True) -> Truth:
    """noise=False leaves out the links' noise labels and the residents' tags and births, which the scores
    do not read (a 20M city's truth has 67 M links)."""
    t = data_dir / "truth"
    links = ["record_id", "resident_id", *(["noise"] if noise else [])]
    schema = {c: pl.String for c in links}
    return Truth(
        residents=pl.read_csv(t / "residents.csv", schema_overrides={"resident_id": pl.String, "tags": pl.String},
                              columns=None if noise else ["resident_id", "status", "tested_in_round"]),
        test_links=pl.read_csv(t / "test_links.csv", schema_overrides=schema, columns=links),
        vaccination_links=pl.read_csv(t / "vaccination_links.csv", schema_overrides=schema, columns=links),
    )


def _parsed(path: Path, contract: Contract, keep: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """`keep` of an export's parsed rows, parsed a slice at a time as the refresh parses them (a key met
    again in a later slice is a duplicate as in the whole file): a 20M city's exports parsed whole
    outgrew the machine that ran the refresh."""
    parser = SliceParser(contract)
    return pl.concat(keep(parser.parse(raw).rows) for raw in open_table(path, contract).slices(SLICE_ROWS))


def score_run(settings: Settings, data_dir: Path) -> dict:
    truth = load_truth(data_dir, noise=False)
    out = settings.out
    call_list = pl.read_csv(out / "call_list.csv", infer_schema=False, columns=["resident_id", "list", "reason"])
    # Scanned: a 20M city's 66 M decisions are read for their keys and decisions only.
    matches = scan_matches(out)
    roster_status = _parsed(settings.roster, ROSTER, lambda rows: normalise_people(rows, ROSTER).select(
        "resident_id", "birth", "tags",
        (pl.col("status").fill_null(STATUS_IN_PLACE) == STATUS_IN_PLACE).alias("in_scope")))
    quarantined, tested_only_in_quarantine = _quarantined(settings, truth)
    scores = {
        "links": link_scores(matches, truth, quarantined),
        "untested": untested_scores(call_list, truth, tested_only_in_quarantine),
    }
    if settings.vaccinations is not None:
        vacc = _parsed(settings.vaccinations, VACCINATIONS,
                       lambda rows: rows.select("record_id", "vaccinated_at", "vaccine"))
        scores["vaccination_reasons"] = vaccination_scores(
            call_list, roster_status, truth, settings.round, settings.rules, vacc
        )
    scores["verify_residents"] = call_list.filter(pl.col("list") == "verify")["resident_id"].n_unique()
    scores["residents"] = roster_status.height
    return scores


def _quarantined(settings: Settings, truth: Truth) -> tuple[set[str], set[str]]:
    """Record ids the run quarantined, and residents whose every in-round test is among them."""
    ids: set[str] = set()
    for name in ("tests", "vaccinations"):
        path = settings.out / "quarantine" / f"{name}.csv"
        if path.exists():
            ids |= set(pl.read_csv(path, infer_schema=False)["record_id"].drop_nulls().to_list())
    tests = pl.concat(raw.select("record_id", parse_datetime_expr("sampled_at").alias("t"))
                      for raw in open_table(settings.tests, TESTS).slices(SLICE_ROWS))
    in_round = tests.filter(pl.col("t").is_null() | pl.col("t").is_between(
        settings.since.replace(tzinfo=None), settings.as_of.replace(tzinfo=None)))
    links = truth.test_links.filter(pl.col("resident_id").is_not_null()).join(in_round, on="record_id")
    per_resident = links.group_by("resident_id").agg(pl.col("record_id").is_in(list(ids)).all().alias("all_q"))
    return ids, set(per_resident.filter(pl.col("all_q"))["resident_id"].to_list())


def misses_by_noise(settings: Settings, data_dir: Path) -> pl.DataFrame:
    """For each noise type: records carrying it, and how many of those were not linked to the right resident."""
    truth = load_truth(data_dir)
    matches = scan_matches(settings.out).select(
        "record_kind", "record_id", "resident_id", "decision").collect()
    quarantined = list(_quarantined(settings, truth)[0])  # not the matcher's to link: counted in the scores
    frames = []
    for kind, t in (("test", truth.test_links), ("vaccination", truth.vaccination_links)):
        m = matches.filter(pl.col("record_kind") == kind).select("record_id", pl.col("resident_id").alias("pred"), "decision")
        t = t.filter(pl.col("resident_id").is_not_null() & ~pl.col("record_id").is_in(quarantined))
        j = t.join(m, on="record_id", how="left").with_columns(
            pl.col("noise").fill_null("").str.split(";").alias("noise"),
            ((pl.col("decision") == "match") & (pl.col("pred") == pl.col("resident_id"))).fill_null(False).alias("ok"),
            ((pl.col("decision") == "match") & (pl.col("pred") != pl.col("resident_id"))).fill_null(False).alias("wrong"),
        ).explode("noise").with_columns(pl.col("noise").replace("", "clean"))
        frames.append(j.group_by("noise").agg(
            pl.len().alias("records"), (~pl.col("ok")).sum().alias("not_linked_right"), pl.col("wrong").sum().alias("wrong_link")
        ).with_columns(pl.lit(kind).alias("record_kind")))
    return pl.concat(frames).sort("record_kind", "noise")
