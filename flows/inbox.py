"""The scheduled refresh: take what was dropped into the street's inbox, load it once, recompute.

Inbox layout: `<inbox>/roster/`, `<inbox>/tests/`, `<inbox>/vaccinations/`. A file is identified by
the SHA-256 of its bytes, so the same export dropped twice (under any name) is loaded once.

Order of events, chosen so that nothing dropped is lost or loaded twice whatever fails and wherever:
1. every new file is read and checked before anything is stored; a bad file fails the run and stays
   in the inbox, untouched, with the previous sheets still in place;
2. rows and the file's hash are stored in one DuckDB transaction;
3. only then is the file moved to the archive. A crash between 2 and 3 leaves a file whose hash is
   already stored: the next refresh archives it without loading it again.
A refresh whose inputs (stored files, round, as-of day) are unchanged since the last good run returns at
once and says so.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.database import Database
from flows.feedback import store_returned
from flows.readers import InputError, RawTable, file_hash, read_table
from flows.refresh import new_report, process
from flows.settings import InboxSettings, Settings, load_campaign
from flows.sources import FILE_COLUMN, Sources, StoredSource, check_row_count, last_run, store_table
from transforms.contract import INPUTS
from transforms.parsing import LINE

SOURCES = ("roster", "tests", "vaccinations")
SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".parquet"}


@dataclass
class InboxFile:
    source: str
    path: Path
    sha256: str


@dataclass
class RefreshSummary:
    run_id: str | None
    changed: bool
    new_files: list[str] = field(default_factory=list)
    duplicate_files: list[str] = field(default_factory=list)
    returned: dict = field(default_factory=dict)  # call sheets sent back by workers, loaded this refresh
    message: str = ""


@contextmanager
def refresh_lock(state: Path, timeout: float = 600.0):
    """Two refreshes never work on one database at once, whoever started them."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "refresh.lock", "w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another refresh still holds {state / 'refresh.lock'}") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _not_input_error(task, task_run, state) -> bool:
    """Retry I/O hiccups, never a bad file: that needs a person."""
    try:
        state.result()
    except InputError:
        return False
    except Exception:
        return True
    return False


@task(cache_policy=NO_CACHE)
def scan_inbox(inbox: InboxSettings) -> list[InboxFile]:
    found: list[InboxFile] = []
    now = time.time()
    for source in SOURCES:
        folder = inbox.path / source
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                continue
            if now - path.stat().st_mtime < inbox.settle_seconds:
                continue  # still being copied in; the next refresh takes it
            found.append(InboxFile(source=source, path=path, sha256=file_hash(path)))
    return found


@task(cache_policy=NO_CACHE)
def read_new_files(files: list[InboxFile]) -> dict[str, RawTable]:
    """Reads and checks every new file before any is stored (a bad one raises InputError)."""
    tables = {}
    for f in files:
        table = read_table(f.path, INPUTS[f.source])
        table.frame = table.frame.with_columns(pl.lit(f.sha256).alias(FILE_COLUMN))
        tables[f.sha256] = table
    return tables


def _ensure_store(db: Database) -> None:
    db.con.execute(
        "CREATE TABLE IF NOT EXISTS inbox_files (sha256 VARCHAR PRIMARY KEY, source VARCHAR, name VARCHAR, "
        "rows BIGINT, loaded_at TIMESTAMP)"
    )
    for source in SOURCES:
        cols = ", ".join(f'"{c}" VARCHAR' for c in INPUTS[source].names)
        db.con.execute(
            f"CREATE TABLE IF NOT EXISTS {store_table(source)} ({LINE} BIGINT, {FILE_COLUMN} VARCHAR, {cols})"
        )


def known_hashes(db: Database) -> set[str]:
    _ensure_store(db)
    return {r[0] for r in db.con.sql("SELECT sha256 FROM inbox_files").fetchall()}


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=_not_input_error)
def store_files(db: Database, files: list[InboxFile], tables: dict[str, RawTable]) -> None:
    """One transaction: the rows and the hashes of the files they came from. A new roster replaces the
    stored one; test and vaccination exports accumulate."""
    with db.transaction():
        for f in files:
            frame = tables[f.sha256].frame
            target = store_table(f.source)
            if f.source == "roster":
                db.con.execute(f"DELETE FROM {target}")
            with db.registered(_incoming=frame):
                db.con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _incoming")
            db.con.execute(
                "INSERT INTO inbox_files VALUES (?, ?, ?, ?, now())", [f.sha256, f.source, f.path.name, frame.height]
            )


RETURNS = "returns"


def scan_returns(inbox: InboxSettings) -> list[Path]:
    folder = inbox.path / RETURNS
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    return [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith((".", "~$"))
            and p.suffix.lower() in (".xlsx", ".csv") and now - p.stat().st_mtime >= inbox.settle_seconds]


def archive_path(path: Path, folder: Path, sha256: str | None = None) -> Path:
    """Into folder/<day>/, named by content hash so two drops of one name never collide."""
    target = folder / datetime.now().strftime("%Y%m%d") / f"{(sha256 or file_hash(path))[:12]}_{path.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        shutil.move(str(path), str(target))
    return target


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 5, 15])
def archive_file(f: InboxFile, archive: Path) -> Path:
    return archive_path(f.path, archive / f.source, f.sha256)


def stored_sources(db: Database, settings: Settings) -> Sources:
    """Every source with stored rows, each read when the refresh comes to it."""
    out: Sources = {}
    for source in SOURCES:
        stored = db.count(store_table(source))
        if stored == 0 and source != "vaccinations":
            raise InputError(f"inbox/{source}", f"no {INPUTS[source].zh} has been loaded yet: drop an export into "
                             f"the inbox folder '{source}'")
        if stored:
            out[source] = StoredSource(settings, source)
    return out


def input_fingerprint(db: Database, settings: Settings) -> str:
    """What the outputs depend on: the stored files, the round, and the as-of day (doses fall due by day)."""
    hashes = sorted(r[0] for r in db.con.sql("SELECT sha256 FROM inbox_files").fetchall())
    db.ensure_attempts()
    db.ensure_feedback()
    # Workers' outcomes and verdicts change the lists as much as new exports do.
    returned = [db.count("call_attempts"), db.count("link_feedback")]
    key = {"files": hashes, "returned": returned, "since": settings.since.isoformat(), "as_of_day": settings.as_of.date().isoformat(),
           "as_of_hour": settings.as_of.strftime("%H")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def publish_artifacts(result, previous: dict | None, summary: RefreshSummary) -> None:
    """What a leader reads in the UI: counts and rates only, never a name, phone or ID."""
    report, coverage = result.report, result.coverage
    communities = coverage.filter(pl.col("level") == "community").select(
        "street", "community", "in_scope", "tested", "untested", "coverage_rate", "unvaccinated", "dose_due",
        "booster_due",
    )
    create_table_artifact(
        key="coverage-by-community", table=communities.to_dicts(),
        description=f"各社区核酸检测覆盖情况（截至 {report.parameters['as_of']}）",
    )
    cov = report.coverage
    lines = [
        f"# 网格排查刷新 {report.run_id}",
        "",
        f"- 新载入文件：{len(summary.new_files)}（重复投递已跳过：{len(summary.duplicate_files)}）",
        "- 载入行数：" + "，".join(f"{k} {v['rows_used']}" for k, v in report.accounting.items()),
        "- 隔离行数：" + "，".join(f"{k} {v['rows_quarantined']}" for k, v in report.accounting.items()),
        f"- 记录匹配：检测 {report.linking['decisions']['test']['match']}，"
        f"接种 {report.linking['decisions'].get('vaccination', {}).get('match', 0)}，"
        f"待核实 {sum(v['possible'] for v in report.linking['decisions'].values())}",
        f"- 在住 {cov['in_scope']} 人，已检测 {cov['tested']}，未检测 {cov['untested']}，"
        f"覆盖率 {cov['coverage_rate'] if cov['coverage_rate'] is not None else '—'}",
        f"- 疫苗：未接种 {cov['unvaccinated']}，应接种下一剂 {cov['dose_due']}，应接种加强针 {cov['booster_due']}",
    ]
    ch = report.changes
    if ch and not ch.get("first_run"):
        lines.append(
            f"- 名单变化：新增 {ch['new']} 条；移出 {ch['came_off']} 条（已检测 {ch['came_off_tested']}，"
            f"已接种 {ch['came_off_vaccinated']}，报外出 {ch['came_off_away']}，其他 {ch['came_off_other']}）；"
            f"仍在名单 {ch['remaining']} 条")
    fu = report.follow_up
    if fu:
        lines.append(f"- 升级处理 {fu.get('escalation', 0)} 人；疑似未登记 {fu.get('unregistered', 0)} 条；"
                     f"登记待更正 {fu.get('roster_corrections', 0)} 条；报外出 {fu.get('away_reported', 0)} 人")
    if previous and previous.get("coverage"):
        p = previous["coverage"]
        lines.append(
            f"- 与上次刷新（{previous['run_id']}）相比：未检测 {cov['untested'] - p['untested']:+d}，"
            f"已检测 {cov['tested'] - p['tested']:+d}"
        )
    create_markdown_artifact(key="refresh-summary", markdown="\n".join(lines), description="本次刷新摘要")


@flow(name="gridsweep-inbox-refresh", log_prints=False)
def refresh_inbox(config: str) -> dict:
    """Scheduled every two hours (or run on demand): load new exports, recompute, publish."""
    logger = get_run_logger()
    started = time.perf_counter()
    settings, inbox = load_campaign(Path(config))
    state = settings.duckdb.path.parent
    with refresh_lock(state):
        files = scan_inbox(inbox)
        db = Database(settings.duckdb)
        try:
            seen = known_hashes(db)
            already = [f for f in files if f.sha256 in seen]
            new: list[InboxFile] = []
            for f in files:  # the same bytes twice in one drop count once
                if f.sha256 not in seen and f.sha256 not in {n.sha256 for n in new}:
                    new.append(f)
            duplicates = already + [f for f in files if f not in already and f not in new]
            tables = read_new_files(new) if new else {}
            rosters = [tables[f.sha256] for f in new if f.source == "roster"]
            if rosters:  # a new roster replaces the stored one: refuse one that is far too short
                db.close()
                check_row_count(settings, "roster", rosters[-1], last_run(settings))
                db = Database(settings.duckdb)
            if new:
                store_files(db, new, tables)
            for f in new + duplicates:
                archive_file(f, inbox.archive)
            summary = RefreshSummary(
                run_id=None, changed=bool(new), new_files=[f.path.name for f in new],
                duplicate_files=[f.path.name for f in duplicates],
            )
            logger.info("inbox: %d new files, %d already loaded", len(new), len(duplicates))
            returned = scan_returns(inbox)
            if returned:  # call sheets the workers sent back: outcomes and verify verdicts
                summary.returned = store_returned(db, returned)
                for path in returned:
                    archive_path(path, inbox.archive / RETURNS)
            fingerprint = input_fingerprint(db, settings)
            previous = db.last_run()
            sources = stored_sources(db, settings)
        finally:
            db.close()
        if previous and previous.get("parameters", {}).get("fingerprint") == fingerprint and settings.out.exists():
            summary.run_id = previous["run_id"]
            summary.message = (f"no new exports since run {previous['run_id']}: the sheets in {settings.out} "
                               "are current")
            logger.info(summary.message)
            create_markdown_artifact(key="refresh-summary", markdown=f"# 无新数据\n\n{summary.message}",
                                     description="本次刷新摘要")
            return summary.__dict__
        report = new_report(settings, fingerprint=fingerprint, inbox=str(inbox.path))
        report.timings["read"] = round(time.perf_counter() - started, 3)
        result = process(settings, sources, report, started)
        summary.run_id = report.run_id
        summary.message = f"run {report.run_id}: {report.coverage['untested']} untested, sheets in {settings.out}"
        publish_artifacts(result, previous, summary)
    return summary.__dict__


def default_config() -> str:
    return os.environ.get("GRIDSWEEP_CONFIG", "campaign.toml")
