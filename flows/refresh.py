"""The refresh flow: each source read -> validated -> normalised in turn, then link -> rules -> publish.

Tasks are thin wrappers around transforms; all file and database I/O happens here. Frames move between
tasks in memory, so no task uses Prefect's input-hash cache (hashing a million-row frame costs more
than the step). Logs carry counts and timings only: never names, phones or ID numbers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from importlib.metadata import version
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

import flows.sources
import transforms.linking
from expectations.suites import SuiteResult, data_docs_site
from flows.code_fingerprint import code_fingerprint, with_transforms_they_import
from flows.collector import fewer_full_collections
from flows.database import Database, new_generation
from flows.disk_space import is_disk_full, tell
from flows.kept_links import KeptLinks, LoneTests, key_sums, part_identity
from flows.kept_meta import read_meta, write_meta
from flows.kept_rules import KeptRules, rules_key
from flows.kept_unregistered import KeptUnregistered, places_key
from flows.loading import LoadingProcess
from flows.lone_facts import KeptLoneFacts
from flows.match_parts import MatchParts
from flows.meter import StageMeter, add_time, time_since
from flows.print_pages import print_pages
from flows.publish import RunOutputs, last_manifest, publish_outputs, rewrite_run_json, run_json
from flows.record_spill import ROW, FactSpill, RecordSpill, Spill
from flows.roster_derived import RosterDerived
from flows.roster_read import RosterRead
from flows.ruling import apply_rules
from flows.run_claim import RunClaim, remove_abandoned
from flows.settings import Settings
from flows.sources import Sources, Table, file_sources, validation_summary
from flows.state_layout import (
    KEPT_LINKS,
    KEPT_RULES,
    LOADED_SOURCES,
    LONE_FACTS,
    ROSTER_DERIVED,
    UNREGISTERED_PLACES,
)
from flows.state_prefetch import StatePrefetch
from transforms.changes import mark_changes
from transforms.contract import ROSTER
from transforms.decision import LINK_COLUMNS, compact_links
from transforms.feedback import CONFIRMED, REJECTED, apply_confirmations, reject_pairs_sql
from transforms.linking import SqlStep, blocking_stage_sql, exact_stage_sql, roster_keys_sql
from transforms.normalise import (
    IDENTITY_COLUMNS,
    LINKING_ONLY_COLUMNS,
)
from transforms.outcomes import outcome_summary
from transforms.pair_decisions import (
    RosterSide,
    decide_pairs,
    household_rows,
    kept_household_rows,
    number_records,
    number_residents,
    record_batches,
    roster_side,
    slice_count,
)
from transforms.pair_decisions import households as household_table  # `households` is the link's frame
from transforms.report import coverage_report_pages
from transforms.roster_gaps import order_corrections
from transforms.rule_parts import Ruled, RuleInputs
from transforms.sheets import build_community_books, build_worker_books, walk_positions
from transforms.sorted_links import sorted_column_by_column
from transforms.unregistered import unregistered_list


@dataclass
class RunReport:
    run_id: str
    started_at: str
    parameters: dict
    inputs: dict = field(default_factory=dict)
    accounting: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    linking: dict = field(default_factory=dict)
    lists: dict = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)
    changes: dict = field(default_factory=dict)
    follow_up: dict = field(default_factory=dict)
    rules: dict = field(default_factory=dict)  # how many residents were ruled now, and why all if all were
    timings: dict = field(default_factory=dict)
    peak_memory_gib: dict = field(default_factory=dict)  # per stage, from flows.meter
    removed_abandoned: list = field(default_factory=list)  # folders of killed refreshes removed (flows.run_claim)
    state_prefetch: dict = field(default_factory=dict)  # what was asked of the disk (flows.state_prefetch)


def _read_batch(spill: RecordSpill, kind: str, rows: pl.Series, timings: dict) -> pl.DataFrame:
    t = time.perf_counter()
    batch = number_records(spill.read(kind, rows).drop("row_hash"))
    time_since(timings, "read_batches", t)
    return batch


def _link_batch(db: Database, steps: list[SqlStep], batch: pl.DataFrame, sides: RosterSide, settings: Settings,
                timings: dict, counts: dict) -> pl.DataFrame:
    """One batch of records through one stage's SQL, then compared, scored and decided."""
    db.expose("records", batch)
    for name, seconds in db.run(steps).items():
        add_time(timings, name, seconds)
    t = time.perf_counter()
    pairs = db.fetch("SELECT * FROM candidate_pairs")
    time_since(timings, "fetch_pairs", t)
    counts["candidate_pairs"] += pairs.height
    counts["chunks"] += slice_count(pairs.height, settings.blocking.pairs_per_chunk)
    t = time.perf_counter()
    decided = decide_pairs(pairs, batch.drop(ROW), sides, settings.scoring, settings.decision,
                           settings.blocking.pairs_per_chunk)
    time_since(timings, "compare_score_decide", t)
    return decided


@task(cache_policy=NO_CACHE, task_run_name="load-{name}")
def load_source(loading: LoadingProcess, name: str, opener: Callable[[], Table], report: RunReport) -> dict:
    """One source read, parsed, checked and normalised in the loading process; a dict the flow empties, as
    Prefect keeps a task's return value until the flow ends."""
    return loading.load(name, opener, report.timings, report.peak_memory_gib)


# The roster's blocking keys (transforms.linking.roster_keys_sql), kept under the linking fingerprint as the
# households are: at 20M residents a refresh makes them from an unchanged roster in 12.7 s.
ROSTER_KEY_STEPS = ("unique_residents", "phone_keys", "phone_households", "name_keys")


@task(cache_policy=NO_CACHE)
def link(db: Database, residents: pl.DataFrame | pl.LazyFrame | RosterRead, spill: RecordSpill, settings: Settings,
         roster_parts: list[Path] | None = None) -> dict:
    """Links the records in `spill` to `residents` (the roster, a scan of it, or its read begun earlier: its
    resident_id and IDENTITY_COLUMNS are read in one chunk, and let go before the decisions are put together). Returns
    {"links": every record's decision (sorted by record: a scan of the copy kept for the next refresh,
    flows.kept_links), "links_any_order": the same in no set order, "copy_files": the copy's files, each
    sorted, with the decisions in each (matches/ lists them so), "lone_tests": the test records with no
    decision (record_id, kept with the copy), "linked_now": the decisions made now (the copy's files when
    everything was linked now), "stats": the figures, "lineage":
    which residents' decisions may differ from the last refresh's copy, that copy's name and the new copy's
    (flows.kept_rules)}: a dict the flow empties, as Prefect keeps a task's return value until the flow ends.
    Links only what it has not linked before. A record's decision depends on nothing
    but the record, the roster and the settings, so decisions are kept with the database (keyed by a
    fingerprint of roster and settings, and by each record's content; a full refresh's as the files of its
    sorted copy, flows.database.Database.save_fresh_link_state) and a refresh links the new records,
    those whose content changed, and those a worker gave a verdict on. A new roster or new settings start
    from scratch. roster_parts: the files `residents` scans, when it scans them whole (the roster's part of
    the key is then kept while they are the same files: linking_fingerprint)."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if isinstance(residents, RosterRead):  # what the link waits for it; its own time is read_roster_aside
        residents = residents.take()
    else:
        residents = roster_identity(residents).collect().rechunk()
    time_since(timings, "read_roster", t)
    feedback = db.feedback()  # creates the table reject_pairs_sql reads, on a new database
    t = time.perf_counter()
    key = linking_fingerprint(residents, settings, roster_parts)
    time_since(timings, "fingerprint", t)
    reused = db.open_link_state(key)
    t = time.perf_counter()
    kept = KeptLinks(settings.duckdb.path.parent / KEPT_LINKS, key)
    last = kept.load(db.link_generation()) if reused else None  # before this run changes the stored decisions
    keys = ["record_kind", "record_id"]
    totals = spill.counts()
    # A refresh that links every record (a first run, a new roster or new settings) with no link a worker
    # confirmed needs no record's key in memory: each kind's rows are linked in order, and their keys go into
    # the state from disk. At 20M residents the keys of 66 M records held 2.9 GiB through linking.
    everything = not reused and (feedback["verdict"] == CONFIRMED).sum() == 0
    todo = None
    known = last.known(spill) if last is not None else {}  # kinds whose first parts are the last refresh's
    time_since(timings, "last_copy", t)
    if not everything:
        # New and changed records, and those a worker gave a verdict on (linked again even when unchanged):
        # keys, row_hash and row number, chosen by DuckDB from the run's Parquet and the stored state.
        t = time.perf_counter()
        unknown = [p for kind, parts in spill.files.items() for p in parts[known.get(kind, 0):]]
        todo = db.records_to_link(spill.paths(), feedback.select(keys).unique(), unknown)
        time_since(timings, "records_to_link", t)
    t = time.perf_counter()
    residents = number_residents(residents)
    db.expose("residents", residents)
    time_since(timings, "expose_roster", t)
    every_roster_step = roster_keys_sql(settings.blocking)
    # The households depend on the roster and the settings alone, as the stored decisions do (key): a
    # refresh with the same roster takes them from the database (at 20M residents 19-20 s to group again and
    # 7-8 s to keep, in a full refresh).
    t = time.perf_counter()
    kept_households = db.kept_households(key) if reused else None
    time_since(timings, "kept_households", t)
    keys_kept = reused and db.kept_roster_keys(key, ROSTER_KEY_STEPS)
    timings |= db.run([step for step in every_roster_step if not (keys_kept and step.name in ROSTER_KEY_STEPS)])
    if not keys_kept:
        t = time.perf_counter()
        db.keep_roster_keys(key, ROSTER_KEY_STEPS)
        time_since(timings, "keep_roster_keys", t)
    t = time.perf_counter()
    if kept_households is None:
        households = household_table(residents, settings.blocking.max_phone_block)
        time_since(timings, "households", t)
        t = time.perf_counter()
        rows = household_rows(residents, households)
        time_since(timings, "roster_side", t)
        t = time.perf_counter()
        db.keep_households(key, households, rows)
        time_since(timings, "keep_households", t)
    else:  # each resident's household row kept with them, not found again by address
        households, kept_rows = kept_households
        rows = kept_household_rows(households, kept_rows, residents.height)
        del kept_households, kept_rows
        time_since(timings, "roster_side", t)
    t = time.perf_counter()
    sides = roster_side(residents, households, rows)
    del rows
    time_since(timings, "roster_side", t)
    del households
    del residents
    # Each batch's decisions go to disk: a city's decisions (17 M at 5M residents) are not held while the
    # later batches are blocked, nor twice when they are put together.
    decided = Spill(spill.folder / "decisions")
    counts = dict.fromkeys(("record_batches", "exact_stage_links", "pending_records", "blocking_batches",
                            "candidate_pairs", "chunks"), 0)
    # Records go through linking a batch at a time: memory is one batch's pairs plus the roster, not the
    # whole run's, and the decisions are the same whatever the batch size. The exact stage runs on each
    # batch of records; the records it leaves are gathered, kind by kind, and blocked a batch at a time
    # (blocking joins the whole roster once per batch, and only a fifth of the records get there).
    reject = SqlStep("reject_worker_feedback", reject_pairs_sql())
    exact_steps = [*exact_stage_sql(), reject]
    blocking_steps = [*blocking_stage_sql(settings.blocking), reject]
    for kind in spill.files:
        rows = (pl.int_range(0, totals[kind], dtype=pl.UInt32, eager=True).alias(ROW) if everything
                else todo.filter(pl.col("record_kind") == kind)[ROW].sort())
        pending = []
        for part in record_batches(rows.to_frame(), settings.blocking.records_per_batch):
            batch = _read_batch(spill, kind, part[ROW], timings)
            if batch.height == 0 and counts["record_batches"]:
                continue  # nothing to link here; one batch always runs, so the figures and tables exist
            counts["record_batches"] += 1
            decided.write("decisions", _link_batch(db, exact_steps, batch, sides, settings, timings, counts))
            t = time.perf_counter()
            counts["exact_stage_links"] += db.count("exact_links")
            pending.append(batch[ROW].gather(db.fetch("SELECT _li FROM exact_pending ORDER BY _li")["_li"]))
            time_since(timings, "exact_left", t)
            del batch
        pending_rows = pl.concat(pending).sort() if pending else pl.Series(ROW, [], dtype=pl.UInt32)
        counts["pending_records"] += pending_rows.len()
        for part in record_batches(pending_rows.to_frame(), settings.blocking.pending_per_batch):
            if part.height:
                counts["blocking_batches"] += 1
                batch = _read_batch(spill, kind, part[ROW], timings)
                decided.write("decisions", _link_batch(db, blocking_steps, batch, sides, settings, timings, counts))
                del batch
    db.drop_view("records")
    db.drop_temp(list(dict.fromkeys(st.name for st in [*every_roster_step, *exact_steps, *blocking_steps])))
    del sides
    # DuckDB's cached pages (gigabytes after blocking a city's records) go back before the decisions are put
    # together and sorted: at 5M residents both together were the link stage's peak.
    db.release_memory()
    t = time.perf_counter()
    fresh = decided.scan("decisions").collect()
    if not everything:
        fresh = apply_confirmations(fresh, feedback, todo)
    fresh = compact_links(fresh.select(LINK_COLUMNS))
    decided.remove()
    if not everything:  # a run that linked everything stores its decisions as the sorted copy's files, below
        db.save_link_state(todo.select(*keys, "row_hash"), fresh, stored=todo.filter(pl.col("stored")).select(keys))
    total = sum(totals.values())
    now = total if everything else todo.height
    time_since(timings, "store_links", t)
    # One sorted copy of every decision for everything after (matches/ lists its files in this order), kept
    # for the next refresh (flows.kept_links): the last one's with the decisions made now, when it can be.
    t = time.perf_counter()
    sums = key_sums(spill, last, known)
    touched = None  # the residents whose decisions may differ from the last copy's, when that is known
    tests_added = None  # those of them whose only changes are test records' new decisions (KeptLinks.carried)
    if now == total:  # everything was linked now: the stored state holds nothing else of use
        columns = fresh.get_columns()
        del fresh  # each column goes once sorted (at 20M the link stage's peak was a sort of 66 M decisions)
        source, links = "linked_now", sorted_column_by_column(columns)
    elif last is not None and (carried := kept.carried(last, spill, sums, todo, fresh, db.decisions_on)) is not None:
        source, (links, touched, tests_added) = "last_copy", carried
    else:
        source, links = "database", db.stored_links(spill.paths(), compact_links)
    # The copy names the stored decisions' generation it was made from; a run that linked everything makes
    # that generation with it: the copy is written first, then stored as the decisions of record in one
    # transaction with the records' keys (a copy whose generation never committed is never used).
    generation = new_generation() if everything else db.link_generation()
    links = kept.save(links, spill, sums, generation)
    any_order = kept.scan(ordered=False)  # for the readers to whom the order does not matter
    time_since(timings, "sorted_links", t)
    if everything:
        t = time.perf_counter()
        db.save_fresh_link_state(spill.paths(), list(kept.files), generation)
        time_since(timings, "store_links", t)
    t = time.perf_counter()
    decisions, confirmed = _decision_counts(kept.tally, totals)
    time_since(timings, "decision_counts", t)
    stats = {
        "records": total,
        "records_linked_now": now,
        "records_reused": total - now,
        # Records in the very parts the last refresh linked, not looked up in the stored state again.
        "records_known_unchanged": sum(last.rows.get(kind, 0) for kind in known) if last is not None else 0,
        # Where the sorted decisions came from: all made now, the last refresh's copy with those made now,
        # or the database.
        "sorted_decisions_from": source,
        **counts,
        "decisions": decisions,
        "worker_feedback": {"confirmed": int((feedback["verdict"] == CONFIRMED).sum()),
                            "rejected": int((feedback["verdict"] == REJECTED).sum()),
                            "links_confirmed_by_workers": confirmed},
        "sql_seconds": timings,
    }
    # What the rules need to rule only the residents these decisions changed (flows.kept_rules): which
    # residents, and which copy of the decisions they differ from and which they are now; and, for rulings made
    # from an older copy (refreshes since then died before they ruled), the copies before it and whom each of
    # the refreshes since changed (the saved copy's steps after its own: none unless it was carried on).
    lineage = {"touched": touched, "tests_added": tests_added, "from": last.path.name if touched is not None else None,
               "to": kept.saved, "earlier": kept.steps[1:]}
    # The run's record keeps a full run's decisions as the copy's files, linked (flows.history_files).
    linked_now = list(kept.files) if now == total else fresh
    return {"links": links, "links_any_order": any_order, "lone_tests": kept.lone_tests(), "linked_now": linked_now,
            "copy_files": list(zip(kept.files, kept.file_rows, strict=True)), "stats": stats, "lineage": lineage}


def roster_identity(roster: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """What linking reads of the roster."""
    return roster.lazy().select("resident_id", *IDENTITY_COLUMNS)


def linking_code_files() -> list[Path]:
    """The code a decision is made by: blocking's SQL, the comparison, the scores, the decision rules, the
    feedback's effect, and what they import."""
    root = Path(transforms.linking.__file__).parent
    return with_transforms_they_import([root / f"{m}.py" for m in ("linking", "pair_decisions", "decision", "feedback")])


@cache
def linking_code_fingerprint() -> str:
    """linking_code_files and the libraries they run on: stored decisions made by other code are not reused."""
    return code_fingerprint(linking_code_files(), ("polars", "duckdb", "rapidfuzz", "numba"))


def _rows_summary(residents: pl.DataFrame) -> list[int]:
    rows = residents.hash_rows(seed=0)
    return [residents.height, int(rows.sum()), int(rows.max() or 0), int(rows.min() or 0)]


def _kept_rows_summary(residents: pl.DataFrame, parts: list[Path], folder: Path) -> list[int]:
    """_rows_summary, kept in folder (flows.kept_meta) while residents is read from the same files (parts): a
    two-hour refresh reads an unchanged roster, and at 20M residents hashing it took 1.0-1.7 s."""
    key = {"parts": part_identity(parts), "columns": residents.columns, "polars": version("polars")}
    kept = read_meta(folder)
    if isinstance(kept, dict) and kept.get("key") == key:
        return kept["summary"]
    summary = _rows_summary(residents)
    folder.mkdir(exist_ok=True)
    write_meta(folder, {"key": key, "summary": summary})
    return summary


def linking_fingerprint(residents: pl.DataFrame, settings: Settings, roster_parts: list[Path] | None = None) -> str:
    """Changes when anything a decision depends on changes, other than the record itself. roster_parts: the
    files residents was read whole from, when it was (its rows' summary is then kept in the state folder)."""
    summary = (_rows_summary(residents) if roster_parts is None else
               _kept_rows_summary(residents, roster_parts, settings.duckdb.path.parent / "roster_rows"))
    parts = {
        "residents": summary,
        "blocking": settings.blocking.fingerprint(), "scoring": asdict(settings.scoring),
        "decision": asdict(settings.decision), "code": linking_code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _decision_counts(tally: pl.DataFrame, totals: dict[str, int]) -> tuple[dict, int]:
    """Per kind: records, matched, possible, unlinked; and the links the workers confirmed (tally:
    flows.kept_links.decision_tally of every decision)."""
    out: dict[str, dict[str, int]] = {}
    for kind in ("test", "vaccination"):
        total = totals.get(kind, 0)
        mine = tally.filter(pl.col("record_kind") == kind)
        match = int(mine.filter(pl.col("decision") == "match")["n"].sum())
        possible = int(mine.filter(pl.col("decision") == "possible")["n"].sum())
        out[kind] = {"records": total, "match": match, "possible": possible, "unlinked": total - match - possible}
    return out, int(tally.filter(pl.col("confirmed"))["n"].sum())


@task(cache_policy=NO_CACHE)
def follow_up(db: Database, lone_tests: LoneTests, lone_facts: KeptLoneFacts, kept_places: KeptUnregistered,
              ruled: Ruled, given: RuleInputs, grid_workers: pl.DataFrame, settings: Settings,
              derived: RosterDerived, timings: dict[str, float] | None = None) -> dict:
    """What changed since the last refresh, the roster's gaps (lone_tests: the test records with no decision,
    as link keeps them; lone_facts and kept_places: what the last refresh kept of their facts and where it
    placed them, each kept again for the next),
    and the report (titled with the streets of grid_workers: street, community, grid_id, grid_worker as the
    roster assigns them).
    Returns the call list marked with what is new (call_list), the tables to publish (tables), the change
    figures (changes) and the report's pages, in a dict the flow empties: Prefect keeps a task's return value
    until the flow ends, and a frame popped from it can be let go of sooner.
    timings: where its steps' seconds are added (follow_up_changes, _unregistered, _corrections, _report; the
    list's own steps: unregistered_facts, _place, _keep)."""
    timings = {} if timings is None else timings
    t = time.perf_counter()
    call_list, changes = mark_changes(ruled.call_list, given.previous, ruled.came_off, ruled.ruled_again)
    time_since(timings, "follow_up_changes", t)
    t = time.perf_counter()
    placed = kept_places.placed(lone_tests, lone_facts, derived.places, timings)
    unlinked = unregistered_list(placed, settings.since, settings.as_of)
    del placed
    time_since(timings, "follow_up_unregistered", t)
    t = time.perf_counter()
    corrections = order_corrections(ruled.wrong_numbers, derived.duplicates())
    time_since(timings, "follow_up_corrections", t)
    tables = {"escalation": ruled.escalation, "unregistered": unlinked, "roster_corrections": corrections}
    t = time.perf_counter()
    coverage = ruled.coverage
    trend = db.coverage_trend(settings.since.isoformat())
    current = coverage.filter(pl.col("level") == "total")["coverage_rate"][0]
    points = [(at.strftime("%m-%d %H:%M"), r) for at, r in trend.iter_rows()] + [
        (datetime.now().strftime("%m-%d %H:%M"), current)]
    as_of_text = settings.as_of.strftime("%Y-%m-%d %H:%M")
    streets = "、".join(sorted(grid_workers["street"].unique().drop_nulls().to_list()))
    whole, top = coverage_report_pages(coverage, call_list, points, changes, title=f"{streets} 核酸检测与疫苗接种进度",
                                       as_of_text=as_of_text)
    time_since(timings, "follow_up_report", t)
    return {"call_list": call_list, "tables": tables, "changes": changes, "report_html": whole, "report_top_html": top}


def new_report(settings: Settings, **extra: object) -> RunReport:
    return RunReport(
        run_id=datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        started_at=datetime.now().isoformat(timespec="seconds"),
        parameters={
            "roster": str(settings.roster), "tests": str(settings.tests),
            "vaccinations": str(settings.vaccinations) if settings.vaccinations else None,
            "since": settings.since.isoformat(), "as_of": settings.as_of.isoformat(), "out": str(settings.out),
            "database": str(settings.duckdb.path), **extra,
        },
    )


@dataclass
class RunResult:
    report: RunReport
    coverage: pl.DataFrame


def process(settings: Settings, sources: Sources, report: RunReport, started: float,
            meter: StageMeter | None = None) -> RunResult:
    """Everything from reading the sources on; shared by the file refresh and the inbox refresh."""
    docs_root = Path(tempfile.mkdtemp(prefix="gridsweep-gx-"))  # GE's file context; copied out offline
    meter = meter or StageMeter()
    temp = settings.duckdb.temp_directory or settings.duckdb.path.parent
    spill, facts = RecordSpill(temp / f"records-{report.run_id}"), FactSpill(temp / f"facts-{report.run_id}")
    claim = RunClaim(temp, report.run_id)
    # What the link and the rules will read of the state, asked of the disk once the first record source is in.
    prefetch = StatePrefetch(settings.duckdb.path.parent, settings.duckdb.path)
    with fewer_full_collections():
        try:  # the claim is let go however this ends, or a long-lived server would hold it for good
            report.removed_abandoned = remove_abandoned(temp)
            if report.removed_abandoned:
                get_run_logger().warning("removed what killed refreshes left in %s: %s", temp,
                                         ", ".join(report.removed_abandoned))
            return _process(settings, sources, report, started, docs_root, meter, spill, facts, prefetch)
        except Exception as exc:
            if is_disk_full(exc):  # said in words in the flow run's log (the scheduled refresh), then raised
                get_run_logger().error(tell(exc, settings.out, settings.duckdb.path.parent))
            raise
        finally:
            prefetch.stop()
            meter.stop()
            spill.remove()
            facts.remove()
            shutil.rmtree(docs_root, ignore_errors=True)
            claim.release()


def _process(
    settings: Settings, sources: Sources, report: RunReport, started: float, docs_root: Path,
    meter: StageMeter, spill: RecordSpill, facts: FactSpill, prefetch: StatePrefetch,
) -> RunResult:
    logger = get_run_logger()

    def lap(name: str, t0: float) -> float:
        time_since(report.timings, name, t0)
        report.peak_memory_gib[name] = meter.mark(name)
        return time.perf_counter()

    # One source at a time, a slice at a time (flows.sources): no two sources' text or parsed rows are in
    # memory together, and a source that fails its checks stops the run before anything is linked or written.
    quarantine: dict[str, pl.DataFrame] = {}
    people: dict[str, pl.DataFrame | pl.LazyFrame] = {}  # on disk: the roster until link is done, the facts
    roster_read: RosterRead | None = None
    suites: dict[str, SuiteResult] = {}
    state = settings.duckdb.path.parent
    # Versions before the thirty-fourth session kept each source's normalised inputs here for the next refresh
    # (7.2 GB at 20M residents), which cost more to write and look up than normalising again: gone.
    shutil.rmtree(state / "normalised", ignore_errors=True)
    with LoadingProcess(settings, docs_root, state / "failed_validation" / report.run_id,
                        spill, facts, flows.sources.SLICE_ROWS, state / LOADED_SOURCES) as loading:
        for name, opener in sources.items():
            loaded = load_source(loading, name, opener, report)
            table, quarantine[name] = loaded.pop("table"), loaded.pop("quarantine")
            report.inputs[name] = {
                "path": table.path, "encoding": table.encoding, "ignored_columns": table.ignored_columns,
                "rows": table.rows, "kept_but_blanked": loaded.pop("notes"),
                "unchanged_since_last_load": loaded.pop("reused"),  # taken from flows.loaded_sources, not read
                "rows_taken_from_last_load": loaded.pop("rows_carried"),  # unchanged, or before what was added
            } | loaded.pop("flags")
            used = loaded.pop("rows_used")
            report.accounting[name] = {
                "rows_read": table.rows, "rows_used": used, "rows_quarantined": quarantine[name].height,
                "balanced": True,  # SourceLoader.load refuses a source whose rows do not add up
            }
            logger.info("%s: %d rows read, %d used, %d quarantined", name, table.rows, used, quarantine[name].height)
            people[name] = facts.scan(name)
            if name != ROSTER.name and roster_read is None and ROSTER.name in people:
                # Linking's read of the roster begins once the first record source is in, beside the others'
                # loading and the suites' docs (flows.roster_read says why not sooner).
                roster_read = RosterRead(roster_identity(people[ROSTER.name]))
                prefetch.start()  # flows.state_prefetch: after the grown export's check, which reads the disk
        suites = loading.finish(report.timings, report.peak_memory_gib)
        for name, suite in suites.items():
            report.validation[name] = validation_summary(suite, name)
            if not suite.success:
                logger.warning("%s: expectations not met: %s", name, ", ".join(report.validation[name]["failed"]))
    t = time.perf_counter()
    db = Database(settings.duckdb)
    matches: MatchParts | None = None
    kept_rules: KeptRules | None = None
    try:
        # Linking reads the roster's identity columns only; the rules read the rest (addresses as typed, grid,
        # tags, status) when it is done, the linking-only columns left on disk.
        roster = people.pop(ROSTER.name)
        called = time.perf_counter()
        linked = link(db, roster_read or roster, spill, settings, facts.files[ROSTER.name])
        time_since(report.timings, "link_task", called)  # the task alone; the stage also lets the spill go
        if roster_read is not None:  # the read's own time, begun once the first record source was in
            report.timings["read_roster_aside"] = roster_read.seconds
        del roster_read
        spill.remove()
        db.release_memory()
        # The decisions (16 M at 5M residents) wait on disk until the rules, the unregistered list, matches/
        # and the run's record read them, each the columns it needs.
        # links: a scan of the sorted copy kept for the next refresh (flows.kept_links); linked_now: the
        # decisions made now (the same scan when every record was linked now).
        linked_now, link_stats, links = linked.pop("linked_now"), linked.pop("stats"), linked.pop("links")
        # The decisions' CSV parts the last output lacks are written from now on by a process of its own, at
        # the lowest priority (flows.match_parts)
        matches = MatchParts(linked.pop("copy_files"), links.collect_schema().names(), settings.out, report.run_id,
                             last_manifest(settings.out))
        del links
        any_order = linked.pop("links_any_order")  # what the rules read
        lone_tests = linked.pop("lone_tests")  # the test records with no decision: the unregistered list's
        # The rules read the rest of the roster (addresses as typed, grid, tags, status) a part at a time from
        # disk, the linking-only columns left there.
        people[ROSTER.name] = roster.select(
            c for c in roster.collect_schema().names() if c not in LINKING_ONLY_COLUMNS)
        del roster
        report.linking = link_stats
        t = lap("link", t)
        given_t = time.perf_counter()
        given = RuleInputs(
            round=settings.round, rules=settings.rules, escalation=settings.escalation,
            outcomes=outcome_summary(db.attempts_since(settings.since)), previous=db.previous_call_list(),
            earlier=db.earlier_untested_counts(settings.since.isoformat()))
        db.release_memory()  # the pages read for them (and for a history's one-time compaction) go
        time_since(report.timings, "rules_inputs", given_t)  # the last list, the calls, the earlier rounds
        kept_rules = KeptRules(state / KEPT_RULES, rules_key(facts.files[ROSTER.name], given),
                               {kind: facts.files[kind] for kind in ("tests", "vaccinations") if kind in facts.files})
        called = time.perf_counter()
        ruled = apply_rules(people, any_order, given, kept_rules, linked.pop("lineage"), db.last_run_id(),
                            report.run_id, report.timings, report.rules)
        time_since(report.timings, "rules_task", called)  # its steps' times and the task's own
        follow_t = time.perf_counter()
        # The duplicates, the buildings' grids and the grids' workers depend on the roster alone: kept while its
        # parts are the same.
        derived = RosterDerived(state / ROSTER_DERIVED, facts.files[ROSTER.name], people["roster"].lazy())
        report.inputs[ROSTER.name]["duplicates_and_places_reused"] = derived.reused
        grid_workers = derived.grid_workers()
        lone_facts = KeptLoneFacts(state / LONE_FACTS, facts.files.get("tests", []))
        kept_places = KeptUnregistered(state / UNREGISTERED_PLACES, places_key(derived.key))
        extra = follow_up(db, lone_tests, lone_facts, kept_places, ruled, given, grid_workers, settings, derived,
                          report.timings)
        report.linking["unlinked_test_facts"] = lone_facts.figures  # kept, or read from the tests again
        report.linking["unregistered_places"] = kept_places.figures  # carried on, or every record placed again
        call_list, tables = extra.pop("call_list"), extra.pop("tables")
        time_since(report.timings, "rules_follow_up", follow_t)
        coverage = ruled.coverage
        ruled.let_go()
        report.changes = extra["changes"]
        report.follow_up = {name: frame.height for name, frame in tables.items()} | {
            "residents_with_call_outcomes": given.outcomes.height,
            "away_reported": ruled.away_reported,
        }
        t = lap("rules", t)
        report.lists = {
            f"{lst}/{reason}": n for lst, reason, n in call_list.group_by("list", "reason").len().sort(
                "list", "reason").iter_rows()
        }
        total = coverage.filter(pl.col("level") == "total").row(0, named=True)
        report.coverage = {k: total[k] for k in ("residents", "in_scope", "tested", "untested", "coverage_rate",
                                                   "vaccination_eligible", "unvaccinated", "dose_due", "booster_due")}
        report.linking["residents_tested"] = ruled.tested
        del ruled
        people.clear()
        as_of_text = settings.as_of.strftime("%Y-%m-%d %H:%M")
        s = time.perf_counter()  # the sheets stage's steps, each timed apart
        # The call list waits on disk for call_list.csv and the run's record; the printable pages hold it in
        # memory until the last is written, then it goes, before the workbooks. It is written by a thread while
        # the books are made, which keep about one core of two busy (at 20M 1.0-1.3 cores in a two-hour refresh,
        # bench/cpu_trace.py); written while the pages were made, where both cores are busy, it put as much on
        # publishing as it took off this stage (bench/HISTORY.md, fortieth session).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="call-list-kept") as aside:
            kept_call_list = aside.submit(facts.write, "call_list", call_list)
            walk = walk_positions(call_list)  # sorted once for the books' sheets and the printable pages
            books = build_worker_books(call_list, coverage, grid_workers, as_of_text=as_of_text,
                                       unregistered=tables["unregistered"], walk=walk)
            s = time_since(report.timings, "sheets_worker_books", s)
            community_books = build_community_books(
                tables["escalation"], tables["unregistered"], tables["roster_corrections"], grid_workers,
                as_of_text=as_of_text)
            s = time_since(report.timings, "sheets_community_books", s)
            kept_call_list.result()
        time_since(report.timings, "sheets_call_list_kept", s)  # what the books left of its writing to wait for
        listed, pages = call_list.height, print_pages(call_list, books, as_of_text, walk)  # rendered as publish asks
        del call_list, walk
        outputs = RunOutputs(
            call_list=facts.scan("call_list"), coverage=coverage, matches=matches,
            quarantine=quarantine, books=books,
            community_books=community_books, tables=tables, report_html=extra["report_html"], report_top_html=extra["report_top_html"],
            print_pages=pages, data_docs=(data_docs_site(docs_root), suites),
        )
        del pages
        waited = time.perf_counter()
        kept_rules.wait()  # the rulings kept for the next refresh (flows.ruling) before this one's outputs go out
        time_since(report.timings, "rules_keep_wait", waited)
        report.timings["rules_keep_aside"] = round(kept_rules.saved_in, 3)
        lap("sheets", t)  # building the books and pages in memory; publish times the writing
        report.state_prefetch = prefetch.figures()  # seconds None: still asking when the books went out
        retirer = publish_outputs(settings.out, outputs, report, started, meter)
        if retirer is not None and retirer.error:
            logger.warning("the replaced output is left for the next run to empty into the pool: %s", retirer.error)
        # The books (a string copy of the call list) and the other tables go before DuckDB takes the run's
        # record: at 20M residents storing 66 M decisions raised the process by 5.5 GiB beside them, its peak.
        del outputs, books, community_books, tables, quarantine
        t = time.perf_counter()

        def recorded() -> str:
            """The report with the record's own time and memory, as the history keeps it."""
            report.timings["record"] = round(time.perf_counter() - t, 3)
            report.peak_memory_gib["record"] = meter.mark("record")
            report.timings["total"] = round(time.perf_counter() - started, 3)
            return run_json(report)

        db.record_run(report.run_id, settings.since.isoformat(),
                      {"call_list": facts.scan("call_list"), "coverage": coverage}, recorded, decisions=linked_now)
        rewrite_run_json(settings.out, report)
    finally:
        if kept_rules is not None:
            try:  # a run failing on the way is not held up by, nor told about, a failed keeping of its rulings
                kept_rules.wait()
            except Exception:
                logger.warning("the rulings could not be kept for the next refresh; it will rule everyone")
        db.close()
        if matches is not None:
            matches.stop()  # what publish did not move into the output is not needed now
    logger.info(
        "run %s: %d in scope, %d untested, %d list rows, %.1f s",
        report.run_id, report.coverage["in_scope"], report.coverage["untested"], listed,
        report.timings["total"],
    )
    return RunResult(report=report, coverage=coverage)


@flow(name="gridsweep-refresh", log_prints=False, validate_parameters=False)
def refresh(settings: Settings) -> RunReport:
    """One refresh from the files named in the settings."""
    started = time.perf_counter()
    meter = StageMeter()
    report = new_report(settings)
    return process(settings, file_sources(settings), report, started, meter).report

