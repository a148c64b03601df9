"""The sources of a refresh, taken in one at a time and a slice of rows at a time: each slice read, parsed,
normalised and written to disk before the next is read, so neither a city's exports (gigabytes of text) nor
their parsed rows are ever in memory whole. A source's expectation suite runs on a sample drawn while its
slices pass; one that fails stops the refresh before anything is linked or written.

Each slice is normalised from its cells (names read into pinyin once per refresh, transforms.names.NamesMet).
Until the thirty-fourth session every source's normalised inputs were kept for the next refresh to look up
instead: writing them cost a sixth of loading (1M residents: 21.5 -> 18.1 s in-process without), and a 20M
refresh that found all but 0.1 M of its 89 M inputs there normalised in 242 s against 260 from nothing. An
unchanged source is taken whole from its last load (flows.loaded_sources) and a grown one is read on from
where it ended, so only a re-exported file is normalised again in full.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import polars as pl

from expectations.docs import export_offline
from expectations.suites import RowSample, SuiteResult, SuiteRunner, checked_column, data_docs_site
from flows.database import Database
from flows.loaded_sources import Kept, LoadedSources
from flows.meter import StageMeter, add_time
from flows.readers import InputError, StartChanged, TextEnd, grown_table, open_table
from flows.record_spill import FactSpill, RecordSpill, link_parts
from flows.settings import Settings
from flows.slice_overlap import SliceOverlap
from transforms.contract import INPUTS, KIND_OF_SOURCE, ROSTER
from transforms.names import NamesMet
from transforms.normalise import IDENTITY_COLUMNS, normalise_people
from transforms.owned_frames import owned
from transforms.parsing import LINE, AsOfWindow, SliceParser
from transforms.record_rows import linking_rows, record_facts, with_row_hash


class Table(Protocol):
    """What a source opens to: its rows a slice at a time (flows.readers.CsvTable, RawTable;
    StoredTable), and what run.json says of it. rows counts the rows read so far. A table that a later
    refresh can read on from also says, once read, where it ended: end() (a TextEnd, a StoredEnd), whose
    json() its opener's grown() takes back."""

    path: str
    encoding: str
    ignored_columns: list[str]
    rows: int

    def slices(self, size: int) -> Iterator[pl.DataFrame]: ...


# The sources a refresh reads, in the order it reads them: the roster first, so a wrong roster stops the run
# before the records are read (its suite runs beside their first slice, which then stops). Each is a loader
# called when its turn comes.
Sources = dict[str, Callable[[], Table]]

# Rows of a source read, parsed and normalised at a time. A city's vaccinations are tens of millions of rows;
# two million rows of the widest source are about 0.3 GiB of text and as much again parsed.
SLICE_ROWS = 2_000_000
# A source is read in at least this many slices, if they can hold MIN_SLICE_ROWS each: read as one slice, a
# district's export was read, then parsed and normalised, then written, one after another, each step with
# one core of two; four slices overlap them (flows.slice_overlap), and smaller slices ask the kernel for fewer
# fresh pages (1M residents, loading the three sources in-process: 34.6-37.0 s in slices of up to 2M rows,
# 31.0-31.7 s in slices of 250-500k).
MIN_SLICES = 4
MIN_SLICE_ROWS = 250_000


def slice_size(table: Table, most: int) -> int:
    """Rows per slice for this table: at most `most`, and small enough for MIN_SLICES slices when the table
    says how many rows it holds (rows_hint) and that leaves MIN_SLICE_ROWS a slice."""
    hint = getattr(table, "rows_hint", None)
    if hint is None:
        return most
    return min(most, max(MIN_SLICE_ROWS, -(-hint() // MIN_SLICES)))


class FileSource:
    """Opens one of the campaign's files when its turn comes (it pickles: loading runs in a process of its own),
    and says which file it is on disk: identity() is what flows.loaded_sources compares to take an unchanged
    file from the last refresh instead of reading it again. Like make and git, it trusts the file system's
    record of the file: its size, modification and change times (the change time no copy or touch can set
    back) and its inode."""

    def __init__(self, path: Path | str, source: str) -> None:
        self.path, self.source = Path(path), source

    def __call__(self) -> Table:
        return open_table(self.path, INPUTS[self.source])

    def grown(self, end: dict) -> Table | None:
        """The file opened to read only the rows added since it was last read (end: its TextEnd), if it grew
        at its end."""
        if "digest" not in end:  # the last load was of stored rows
            return None
        return grown_table(self.path, INPUTS[self.source], TextEnd.from_json(end))

    def identity(self) -> dict:
        st = os.stat(self.path)
        return {"file": str(self.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "ctime_ns": st.st_ctime_ns, "inode": st.st_ino, "device": st.st_dev}


def file_sources(settings: Settings) -> Sources:
    """The campaign's files, each opened when its turn comes. A missing file is refused before any is read."""
    paths = {"roster": settings.roster, "tests": settings.tests}
    if settings.vaccinations is not None:
        paths["vaccinations"] = settings.vaccinations
    for path in paths.values():
        if not Path(path).exists():
            raise InputError(path, "file not found")
    return {name: FileSource(path, name) for name, path in paths.items()}


def _start_holds(table: Table) -> bool:
    """A grown file still begins with the bytes of the load it is read on from (flows.readers.StartCheck);
    True for any other table."""
    holds = getattr(table, "start_holds", None)
    return holds is None or holds()


def source_identity(opener: Callable[[], Table]) -> dict | None:
    """What says a source is unchanged since it was last loaded (None: an opener that cannot say)."""
    identity = getattr(opener, "identity", None)
    return identity() if identity is not None else None


# The inbox keeps every export it took in a table per source, each row with its file's hash.
FILE_COLUMN = "_file"


def store_table(source: str) -> str:
    return f"store_{source}"


# The order the inbox's files of a source came in (and are read in): a file that comes later is read after
# every file before it, so a refresh reads on from where the last one ended (StoredEnd).
_ARRIVAL = "SELECT sha256, row_number() OVER (ORDER BY loaded_at, name, sha256) AS _n FROM inbox_files WHERE source = ?"


def stored_files(settings: Settings, source: str, db: Database | None = None) -> list[str]:
    """The hashes of the files stored for a source, in the order they came."""
    con = db or Database(settings.duckdb)
    try:
        return [h for (h,) in con.con.execute(f"SELECT sha256 FROM ({_ARRIVAL}) ORDER BY _n", [source]).fetchall()]
    finally:
        if db is None:
            con.close()


@dataclass(frozen=True)
class StoredEnd:
    """Where a read of a source's stored rows ended: the files it read, in order. Each file is whole, so a row
    never runs on into the next (closed)."""

    files: list[str]
    closed: bool = True

    def json(self) -> dict:
        return asdict(self)


class StoredSource:
    """Opens a source's stored rows (StoredTable) when its turn comes; its identity is the files stored for it,
    each known by the hash of its bytes, in the order they came."""

    def __init__(self, settings: Settings, source: str) -> None:
        self.settings, self.source = settings, source

    def __call__(self) -> Table:
        return StoredTable(self.settings, self.source)

    def grown(self, end: dict) -> Table | None:
        """The stored rows of the files that came after those of the last load (end: its StoredEnd), if its
        files are still the first ones stored."""
        files = stored_files(self.settings, self.source)
        before = end.get("files")
        if before is None or files[: len(before)] != before:
            return None
        return StoredTable(self.settings, self.source, after=len(before))

    def identity(self) -> dict:
        return {"stored": self.source, "files": stored_files(self.settings, self.source)}


class StoredTable:
    """A source's stored rows, as the refresh reads them: from the state database a slice at a time (the
    exports of weeks accumulate here), in the order the files and their lines came. after: the number of
    files read before, whose rows are skipped."""

    encoding = "stored"

    def __init__(self, settings: Settings, source: str, after: int = 0) -> None:
        self.settings, self.source, self.after = settings, source, after
        self.path, self.ignored_columns, self.rows = f"store:{source}", [], 0
        self._files: list[str] | None = None

    def rows_hint(self) -> int:
        db = Database(self.settings.duckdb)
        try:
            query = (f"SELECT count(*) FROM {store_table(self.source)} s JOIN ({_ARRIVAL}) f "
                     f"ON s.{FILE_COLUMN} = f.sha256 WHERE f._n > ?")
            return int(db.con.execute(query, [self.source, self.after]).fetchone()[0])
        finally:
            db.close()

    def slices(self, size: int) -> Iterator[pl.DataFrame]:
        db = Database(self.settings.duckdb)
        try:
            self._files = stored_files(self.settings, self.source, db)
            query = (f"SELECT s.* FROM {store_table(self.source)} s JOIN ({_ARRIVAL}) f ON s.{FILE_COLUMN} = f.sha256 "
                     f"WHERE f._n > ? ORDER BY f._n, s.{LINE}")
            given = 0
            relation = db.con.sql(query, params=[self.source, self.after])
            with relation.to_arrow_reader(batch_size=size) as reader:  # streams the rows
                for batch in reader:
                    frame = pl.from_arrow(batch)
                    self.rows, given = self.rows + frame.height, given + 1
                    yield frame
                if not given:
                    yield pl.from_arrow(reader.schema.empty_table())
        finally:
            db.close()

    def end(self) -> StoredEnd:
        """Where this read ended, once every slice is read."""
        assert self._files is not None, "the rows were not read"
        return StoredEnd(self._files)


def last_run(settings: Settings) -> dict | None:
    """The last run's run.json from the state database, or None before the first run."""
    if not settings.duckdb.path.exists():
        return None
    db = Database(settings.duckdb)
    try:
        return db.last_run()
    finally:
        db.close()


def check_row_count(settings: Settings, name: str, table: Table, previous: dict | None) -> None:
    """A file with far fewer rows than the last load of the same source is refused (a truncated export
    or the wrong file); the staff can lower [checks] min_row_fraction if the drop is real."""
    if settings.min_row_fraction <= 0 or not previous:
        return
    before = previous.get("accounting", {}).get(name, {}).get("rows_read")
    if before and table.rows < settings.min_row_fraction * before:
        raise InputError(
            table.path,
            f"{table.rows} rows, far fewer than the {before} rows of the last load "
            f"(run {previous['run_id']}): a truncated export or the wrong file? If it is right, set "
            f"[checks] min_row_fraction lower in the campaign file",
        )


def expectation_error(path: str, contract, result: SuiteResult, docs: Path) -> InputError:
    """A whole file that breaks its suite (a third of its IDs malformed, say) is a wrong or broken export:
    linking it would silently miss people, so the refresh stops and says which column and how many."""
    bad = next(e for e in result.expectations if not e.success)
    source = checked_column(contract, bad.column)
    column = contract.column(source).zh if source in contract.names else source
    share = (f"{bad.unexpected_count} of {bad.element_count} rows"
             if bad.unexpected_count is not None and bad.element_count else "the table")
    if result.rows_checked < result.rows_total:
        share += f" (a random sample of its {result.rows_total} rows)"
    return InputError(
        path,
        f"{share} fail the check {bad.expectation} for {contract.zh}: is this the right export, with the right "
        f"column under this header? Details: {docs / 'index.html'}. If the file is right, set [checks] "
        "stop_on_failed_expectations = false in the campaign file",
        column=column,
    )


def validation_summary(result: SuiteResult, name: str) -> dict:
    """For run.json: the verdict, what failed, and every expectation's counts."""
    return {
        "success": result.success,
        "rows_checked": result.rows_checked, "rows_total": result.rows_total,
        "failed": [f"{e.expectation}({e.column or ''})" for e in result.expectations if not e.success],
        "expectations": [asdict(e) for e in result.expectations],
        "data_docs": f"data_docs/index.html#{name}",
    }


def identity_flags(people: pl.DataFrame) -> dict:
    """Suspicious values are kept and used as evidence, never as exact keys; the counts tell the staff."""
    return {"id_flags": dict(people.group_by("id_flag").len().sort("id_flag").iter_rows()),
            "phone_flags": dict(people.group_by("phone_flag").len().sort("phone_flag").iter_rows())}


def spill_linking_rows(spill: RecordSpill, source: str, people: pl.DataFrame) -> None:
    """Writes what link reads of these normalised records: keys, identity columns and their hash."""
    kind = KIND_OF_SOURCE[source]
    spill.write(kind, with_row_hash(linking_rows(people, kind, IDENTITY_COLUMNS), IDENTITY_COLUMNS))


def record_sink(spill: RecordSpill, facts: FactSpill, source: str) -> Callable[[pl.DataFrame], None]:
    """Where a part of normalised records goes: what linking reads, and the facts the rules read."""
    def write(people: pl.DataFrame) -> None:
        spill_linking_rows(spill, source, people)
        facts.write(source, record_facts(people))
    return write


class PartNormaliser:
    """Normalises one source a part at a time and counts its identity flags; summary() gives them, with
    those of the rows before these (carried: a grown file read on from where it ended)."""

    def __init__(self, source: str, carried: dict | None = None, names_met: NamesMet | None = None) -> None:
        """names_met: the names normalised before, in this source's earlier parts and the sources before it."""
        self.contract, self.names_met = INPUTS[source], names_met
        carried = carried or {}
        self.flags: dict[str, Counter] = {name: Counter(carried.get(name, {})) for name in ("id_flags", "phone_flags")}

    def part(self, rows: pl.DataFrame) -> pl.DataFrame:
        people = normalise_people(rows, self.contract, self.names_met)
        for name, counts in identity_flags(people).items():
            self.flags[name].update(counts)
        return people

    def summary(self) -> dict:
        in_order = lambda item: (item[0] is not None, item[0] or "")  # noqa: E731  (as polars sorts: null first)
        return {name: dict(sorted(c.items(), key=in_order)) for name, c in self.flags.items()}


@dataclass
class TableFacts:
    """What run.json says of a source once it is read (the opened table is let go)."""

    path: str
    encoding: str
    ignored_columns: list[str]
    rows: int

    @classmethod
    def of(cls, table: Table) -> TableFacts:
        return cls(table.path, table.encoding, list(table.ignored_columns), table.rows)


@dataclass
class Carried:
    """What a grown file's read goes on from: the file opened after the last load's end, and of that load
    its figures, round-end window, quarantine, parser keys (and their parts, kept again) and sample."""

    table: Table
    summary: dict
    window: AsOfWindow
    quarantine: pl.DataFrame
    parser_keys: pl.DataFrame | None
    parser_key_parts: list[Path]
    sample: RowSample


class SourceLoader:
    """Takes the sources of one refresh in, one at a time; holds what they share (the suites' context, the
    spills, the memory meter, and run.json's timings and peaks per stage, which add up and keep the highest
    over the sources and slices). With `loaded`, a source unchanged since the last refresh is taken from there
    (flows.loaded_sources) and one read now is kept there."""

    def __init__(self, settings: Settings, docs_root: Path, failed_docs: Path, spill: RecordSpill,
                 facts: FactSpill, meter: StageMeter, timings: dict[str, float], peaks: dict[str, float],
                 slice_rows: int | None = None, loaded: LoadedSources | None = None) -> None:
        self.settings, self.docs_root, self.failed_docs = settings, docs_root, failed_docs
        self.spill, self.facts, self.loaded = spill, facts, loaded
        self.meter, self.timings, self.peaks = meter, timings, peaks
        self.slice_rows = slice_rows or SLICE_ROWS
        self._checks: SuiteRunner | None = None  # made when the first suite is due: GE imports meanwhile
        # The suites run on a thread of their own, each beside the next source's load (Great Expectations on
        # pandas, single-threaded, half a second to a second a source however big the file): one after the
        # other in source order, each source's sample and facts with it.
        self._checker: ThreadPoolExecutor | None = None
        self._pending: dict[str, tuple[TableFacts, Future[SuiteResult]]] = {}
        self.previous = last_run(settings)
        self.suites: dict[str, SuiteResult] = {}  # the suites done so far (suite() waits for one)
        self.suite_seconds = 0.0  # the suites' own time, on their thread
        self.names_met = NamesMet()  # every source's names, for this refresh only

    def _lap(self, stage: str, since: float, step: str | None = None) -> float:
        seconds = time.perf_counter() - since
        for name in filter(None, (stage, step)):
            add_time(self.timings, name, seconds)
        self.peaks[stage] = self.meter.mark(stage)
        return time.perf_counter()

    def load(self, name: str, opener: Callable[[], Table]) -> dict:
        """Returns {"table": the table's TableFacts, "rows_used", "quarantine", "notes" (values kept but
        blanked), "flags" (identity flags and normalised counts), "reused" (taken from the last refresh),
        "rows_carried" (rows of a grown file taken from the last refresh, not read now)}.
        The normalised rows are on disk: the roster's in the FactSpill, the records' linking rows in the
        RecordSpill and their facts in the FactSpill."""
        self._failed_so_far()
        identity = source_identity(opener) if self.loaded is not None else None
        key = identity and self.loaded.key(identity, self.settings.expectation_sample_rows)
        start = None
        if key:
            kept = self.loaded.find(name, key, self.settings.as_of)
            if kept is not None:
                return self._reuse(name, kept)
            start = self._grown(name, opener, key)
            self.loaded.forget(name)  # the last load is of no use now, and is replaced only if this one succeeds
        try:
            loaded, kept_load = self._read(name, opener, start)
        except Exception:
            if start is None or _start_holds(start.table):
                raise
            # The file's first bytes are not the last load's (found while the added rows were read, or
            # refused): what was carried and read on is dropped, and the file is read whole, as it is.
            self._drop_carried(name)
            loaded, kept_load = self._read(name, opener)
        if key and source_identity(opener) == identity:  # not changed while it was read
            self.loaded.keep(name, key, **kept_load)
        return loaded

    def _grown(self, name: str, opener: Callable[[], Table], key: dict) -> Carried | None:
        """The last load of a file that grew at its end since, taken into this run's spills, with the file
        opened on from where that load ended; None if it did not only grow."""
        t = time.perf_counter()
        kept = self.loaded.find(name, key, self.settings.as_of, grown=True)
        grown = getattr(opener, "grown", None)
        if kept is None or grown is None:
            return None
        # The last load's parser keys and quarantine are read (Parquet, on polars' threads) while grown()
        # reads the added bytes (and starts the check of the file's first bytes, which goes on while the added
        # rows are read: _read waits for it before their load is used).
        aside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kept-load")
        try:
            keys, quarantine = aside.submit(kept.parser_keys), aside.submit(kept.quarantine)
            table = grown(kept.end)
            if table is None:
                return None
            keys, quarantine = keys.result(), quarantine.result()
        finally:
            aside.shutdown(wait=True, cancel_futures=True)
        if kept.kind is not None:
            self.spill.take(kept.kind, kept.record_parts, kept.records)
        self.facts.take(name, kept.fact_parts)
        # The parser's keys linked beside the facts too: the kept load is dropped before this one is kept.
        key_parts = link_parts(kept.parser_key_parts, self.facts.folder / f".{name}-parser-keys", "keys")
        sample = RowSample.restored(self.settings.expectation_sample_rows, kept.sample(), kept.summary["sample_seen"])
        carried = Carried(table, kept.summary, kept.window, quarantine, keys, key_parts, sample)
        self._lap("read", t, "carry_grown")
        return carried

    def _drop_carried(self, name: str) -> None:
        """What _grown took of the last load, and what was read on from it, out of this run's spills."""
        if name != ROSTER.name:
            self.spill.drop(KIND_OF_SOURCE[name])
        self.facts.drop(name)
        shutil.rmtree(self.facts.folder / f".{name}-parser-keys", ignore_errors=True)

    def _read(self, name: str, opener: Callable[[], Table], start: Carried | None = None) -> tuple[dict, dict]:
        """load()'s dict for a source read now (from start on, if it is a grown file's last load), and what
        LoadedSources.keep stores of it."""
        contract, settings = INPUTS[name], self.settings
        t = time.perf_counter()
        table = opener() if start is None else start.table
        t = self._lap("read", t)
        sample = RowSample(settings.expectation_sample_rows) if start is None else start.sample
        notes = Counter(start.summary["notes"] if start else {})
        quarantine = [start.quarantine] if start else []
        parser = SliceParser(contract, settings.as_of, earlier=start and start.parser_keys, window=start and start.window)
        given = 0 if parser.earlier is None else parser.earlier.height  # keys kept already, not parsed now
        used = start.summary["rows_used"] if start else 0
        # Everything normalised goes to disk as it is made: the roster too, whose linking columns link reads
        # and whose other columns the rules read (5M residents' roster held 4 GiB while the records were read).
        each = partial(self.facts.write, name) if name == ROSTER.name else record_sink(self.spill, self.facts, name)
        normaliser = PartNormaliser(name, start and start.summary["flags"], self.names_met)
        # The next slice is read and the last one written while this one is parsed and normalised: "read"
        # is then the wait for the next slice, and "normalise" holds the wait for the last one's parts.
        with SliceOverlap(table.slices(slice_size(table, self.slice_rows)), each) as slices:
            for raw in slices:
                self._failed_so_far()
                t = self._lap("read", t)
                parsed = parser.parse(raw)
                del raw
                quarantine.append(owned(parsed.quarantine))  # a few rows, kept till the source is in: not its slice
                notes.update(parsed.notes)
                sample.add(parsed.rows)
                used += parsed.rows.height
                t = self._lap("validate", t, "validate_parse")
                slices.write(normaliser.part(parsed.rows))
                del parsed
                t = self._lap("normalise", t)
        t = self._lap("normalise", t)
        if start is not None and not _start_holds(start.table):
            raise StartChanged(table.path)
        t = self._lap("read", t, "start_check_wait")  # what the check of a grown file's start took past its rows
        window = parser.window
        keys = None if parser.earlier is None else parser.earlier.slice(given)
        del parser  # the earlier slices' keys
        facts = TableFacts.of(table)
        if start is not None:
            facts.rows += start.summary["table"]["rows"]
        check_row_count(settings, name, facts, self.previous)
        quarantined = pl.concat(quarantine)
        if facts.rows != used + quarantined.height:
            raise RuntimeError(f"row accounting failed for {name}: some input rows were neither used nor "
                               "quarantined")
        self._check(name, facts, sample, t)
        ended = getattr(table, "end", None)
        t = time.perf_counter()
        end = ended and ended()
        self._lap("read", t, "hash_for_next")
        summary = {"rows_used": used, "notes": dict(notes), "flags": normaliser.summary()}
        kind = None if name == ROSTER.name else KIND_OF_SOURCE[name]
        kept_load = {
            "window": window, "kind": kind, "records": self.spill.counts().get(kind, 0) if kind else 0,
            "record_parts": list(self.spill.files.get(kind, [])) if kind else [],
            "fact_parts": list(self.facts.files.get(name, [])), "quarantine": quarantined, "sample": sample.kept(),
            "summary": summary | {"table": asdict(facts), "sample_seen": sample.seen},
            "end": end and end.json(), "parser_key_parts": start.parser_key_parts if start else [], "parser_keys": keys,
        }
        carried = start.summary["table"]["rows"] if start else 0
        return {"table": facts, "quarantine": quarantined, "reused": False, "rows_carried": carried} | summary, kept_load

    def _reuse(self, name: str, kept: Kept) -> dict:
        """The source as the last refresh took it in: its parts linked into this run's spills, its suite run
        again on the same sample under this round's end, its row count checked again."""
        t = time.perf_counter()
        if kept.kind is not None:
            self.spill.take(kept.kind, kept.record_parts, kept.records)
        self.facts.take(name, kept.fact_parts)
        summary = kept.summary
        facts = TableFacts(**summary["table"])
        quarantined = kept.quarantine()
        t = self._lap("read", t, "reuse_unchanged")
        t = self._lap("normalise", t)  # nothing to normalise: the stage is in run.json all the same
        check_row_count(self.settings, name, facts, self.previous)
        sample = RowSample.restored(self.settings.expectation_sample_rows, kept.sample(), summary["sample_seen"])
        self._check(name, facts, sample, t)
        return {"table": facts, "quarantine": quarantined, "reused": True, "rows_carried": facts.rows,
                "rows_used": summary["rows_used"],
                "notes": summary["notes"], "flags": summary["flags"]}

    def finish(self) -> None:
        """Once every source is in: each suite's verdict (a failure stops the refresh here if it did not
        already), then the Data Docs of them all, which the refresh publishes. validate_expectations: the
        suites' own seconds (run beside the loads) and the docs'; validate_expectations_wait: what the loading
        waited for the suites once the last source was in."""
        t = time.perf_counter()
        for name in list(self._pending):
            self.suite(name)
        self._lap("validate", t, "validate_expectations_wait")
        add_time(self.timings, "validate_expectations", self.suite_seconds)
        t = time.perf_counter()
        if self._checks is not None:
            self._checks.build_docs()
        self._lap("validate", t, "validate_expectations")
        if self._checker is not None:
            self._checker.shutdown(wait=True)
            self._checker = None

    def suite(self, name: str) -> SuiteResult:
        """The source's suite once it has run; a failure raises when the settings say to stop."""
        if name in self._pending:
            facts, running = self._pending.pop(name)
            self.suites[name] = running.result()
            self._stop_if_failed(name, facts)
        return self.suites[name]

    def _check(self, name: str, facts: TableFacts, sample: RowSample, t: float) -> None:
        """The source's expectation suite on its sample, begun on the suites' thread."""
        self._checker = self._checker or ThreadPoolExecutor(max_workers=1, thread_name_prefix="suites")
        self._pending[name] = (facts, self._checker.submit(self._run_suite, name, sample))
        self._lap("validate", t)

    def _run_suite(self, name: str, sample: RowSample) -> SuiteResult:
        t = time.perf_counter()
        self._checks = self._checks or SuiteRunner(self.docs_root, self.settings.as_of)
        try:
            return self._checks.check(name, sample, INPUTS[name])
        finally:
            self.suite_seconds += time.perf_counter() - t

    def _failed_so_far(self) -> None:
        """A suite done and failed stops the refresh at once (the next source's slice), not once all are in."""
        for name, (_, running) in list(self._pending.items()):
            if running.done():
                self.suite(name)

    def _stop_if_failed(self, name: str, facts: TableFacts) -> None:
        suite = self.suites[name]
        if not suite.success and self.settings.stop_on_failed_expectations:
            self._checker.shutdown(wait=True)  # a later source's suite, if it runs, ends before the docs are built
            self._checks.build_docs()
            export_offline(data_docs_site(self.docs_root), self.failed_docs, self.suites)
            raise expectation_error(facts.path, INPUTS[name], suite, self.failed_docs)
