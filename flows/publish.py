"""Writing a run's outputs: everything goes into a staging folder beside --out, and only a complete
set replaces the previous one. A failed run leaves the last good outputs exactly where they were."""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from expectations.docs import export_offline
from expectations.suites import SuiteResult
from flows.beside_output import PREVIOUS, RETIRING, STAGING, beside, found_beside
from flows.code_fingerprint import code_fingerprint, with_transforms_they_import
from flows.csv_aside import write_csv
from flows.match_parts import MatchParts, Part
from flows.meter import StageMeter
from flows.record_spill import hard_link
from flows.spare_files import Retirer, SpareFiles, pool_turn, write_into
from flows.state_prefetch import read_ahead
from flows.workbooks import Keep, QuarantineBook, write_workbooks
from transforms.report import chart_bars
from transforms.sheets import CommunityBook, WorkerBook, book_digests, safe_file_name

if TYPE_CHECKING:
    from flows.refresh import RunReport


def recover_interrupted_swap(out: Path) -> None:
    """If a run died between moving the old outputs aside and moving the new ones in, put the old back."""
    if out.exists():
        return
    previous = found_beside(out, PREVIOUS)
    if previous:
        previous[-1].rename(out)


@dataclass(frozen=True)
class PrintPage:
    """A worker's printable page: where it goes (street, community, file name), the digest of what it shows
    but its time (transforms.print_sheet.page_digest), and how to render it."""

    place: tuple[str, str, str]
    digest: str
    render: Callable[..., bytes]  # the page as UTF-8; given its block's bodies (from bodies()), it uses them
    block: Hashable = None  # pages of one block are rendered from one query's bodies
    bodies: Callable[[list], object] | None = None  # that query, for the keys of the pages wanted (in a thread)
    key: tuple = ()  # this page's key among them: street, community, grid worker


@dataclass
class RunOutputs:
    """Everything one run publishes, decided before anything is written."""

    call_list: pl.DataFrame
    coverage: pl.DataFrame
    matches: MatchParts  # every decision, as CSV parts (flows.match_parts)
    quarantine: dict[str, pl.DataFrame]
    books: list[WorkerBook]
    community_books: list[CommunityBook] = field(default_factory=list)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # escalation, unregistered, roster_corrections
    report_html: str | None = None
    report_top_html: str | None = None  # the report without its long tables: what report.png shows
    print_pages: Iterable[PrintPage] = ()  # rendered one at a time as they are written, if they changed
    data_docs: tuple[Path, dict[str, SuiteResult]] | None = None


def publish_outputs(out: Path, outputs: RunOutputs, report: RunReport, started: float,
                    meter: StageMeter | None = None) -> Retirer | None:
    """The outputs written and put in place of the last; the last is emptied into the pool by the Retirer
    returned (a process of its own, which the run does not wait for)."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with pool_turn(out) as waited:
        # Waited only when this run came before the last one's retirer was done (two hours later, it never does).
        report.timings["pool_wait"] = waited
        recover_interrupted_swap(out)
        spares = SpareFiles(out)
        last = spares.last_retirement()
        if last is not None:  # the retiring of the output before this one's, measured by its retirer
            report.timings["retire_last"] = last.get("seconds")
            if last.get("error"):
                report.lists["retire_last_error"] = last["error"]
        t = time.perf_counter()
        spares.retire_stale()  # what a retirer left (stopped, or never started)
        report.timings["retire_stale"] = round(time.perf_counter() - t, 3)
        retiring = _publish(out, outputs, report, started, meter, spares)
    return Retirer(out) if retiring is not None else None


def _publish(out: Path, outputs: RunOutputs, report: RunReport, started: float, meter: StageMeter | None,
             spares: SpareFiles) -> Path | None:
    """In the pool's turn: the outputs written into staging and swapped in; returns the replaced output."""
    staging = beside(out, STAGING, report.run_id)
    t, kernel, user = time.perf_counter(), os.times().system, os.times().user
    laps: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        laps[name] = round(time.perf_counter() - since, 3)
        return time.perf_counter()

    # The CSVs (a 20M city's call list alone is 1.7 GB, mostly the disk's time) are written by a thread of
    # their own while the rest of the stage goes on: written first, on their own, they left a core idle.
    aside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv")
    # Everything made before (the books: 546,000 Python objects at 1M residents, growing with the city) is
    # left out of the collector's full passes while the files are written: a pass walked them all (0.33 s at 1M).
    gc.freeze()
    carried: CarriedOver | None = None  # its linking threads are waited for before staging can be removed
    matches_todo: Future[list[Part]] = Future()  # what the CSVs' thread waits for, to place the decisions' parts
    try:
        spares.take(staging)  # the pool's emptied tree, where most of the books and pages are written again
        s = time.perf_counter()
        (staging / "quarantine").mkdir()
        carried = CarriedOver(out, staging, spares)
        # The decisions' parts not linked from the last output (and those found gone from it, once linked),
        # placed by the CSVs' thread after the others.
        matches = outputs.matches.claim(carried)
        csvs = aside.submit(_write_csvs, staging, outputs, matches_todo, laps)
        quarantine_books = []  # written with the other books, in parallel; unchanged ones linked
        # The CSV as the book: linked while the rows are the same (a 20M city's vaccination export's 1.1 M
        # quarantined rows made a 357 MB CSV at every refresh).
        same = {(name, kind): carried.over(f"quarantine/{name}.{kind}", _frame_digest(frame, name))
                for name, frame in outputs.quarantine.items() for kind in ("csv", "xlsx")}
        gone = carried.link()()
        matches += [part for part in outputs.matches.parts if part.rel in gone]
        matches_todo.set_result(matches)
        report.lists["matches_parts_written"] = len(matches)
        report.lists["matches_parts_reused"] = len(outputs.matches.parts) - len(matches)
        csvs_written = 0
        for name, frame in outputs.quarantine.items():
            if not same[name, "csv"] or f"quarantine/{name}.csv" in gone:
                write_csv(frame.rename({"_line": "line"}), staging / "quarantine" / f"{name}.csv")
                csvs_written += 1
            rel = f"quarantine/{name}.xlsx"
            if not same[name, "xlsx"] or rel in gone:
                quarantine_books.append((QuarantineBook(frame, name), carried.path(rel)))
        report.lists["quarantine_books_written"] = len(quarantine_books)
        report.lists["quarantine_csvs_written"] = csvs_written
        s = lap("write_quarantine_csv", s)
        if outputs.data_docs is not None:
            export_offline(outputs.data_docs[0], staging / "data_docs", outputs.data_docs[1])
        s = lap("write_data_docs", s)
        # The report's picture (Chromium, 1.3 s at 1M and 2.4 at 20M) is taken by the CSVs' thread after them:
        # on the main thread it held back the pages by as long.
        reported = aside.submit(_write_report_timed, staging, outputs, report, laps) if outputs.report_html else None
        # Places as text (a city's 77,481 books and 66,411 pages each made five Path objects here)
        jobs = [(book, f"sheets/{safe_name(book.street)}/{safe_name(book.community)}/{book.file_name}")
                for book in outputs.books]
        jobs += [(book, f"community/{safe_name(book.street)}/{book.file_name}") for book in outputs.community_books]
        digested = time.perf_counter()
        digests = book_digests([book for book, _ in jobs])
        laps["write_book_digests"] = round(time.perf_counter() - digested, 3)  # a part of write_carry_over
        same = [carried.over(rel, digest.book, digest.sheets) for (_, rel), digest in zip(jobs, digests, strict=True)]
        books_linked = carried.link()  # while the pages are written
        todo = [(book, carried.path(rel), carried.keep(rel, digest.sheets))
                for (book, rel), digest, kept in zip(jobs, digests, same, strict=True) if not kept]
        threading.Thread(target=_read_ahead, args=([str(keep.path) for _, _, keep in todo if keep],),
                         name="read-ahead", daemon=True).start()
        s = lap("write_carry_over", s)  # every book's digest, and which are the last output's
        # And what was made since, which lives until the books are written: the last output's manifest and this
        # one's (two lists a book), every book's digest, place and job. At 20M 0.75-1.0 M objects, 400,000 of
        # them lists, which each of the stage's four full collections walked in 0.16-0.28 s (gc.callbacks,
        # bench/HISTORY.md, fiftieth session).
        gc.freeze()
        # The pages before the books, not beside them: at 20M residents, pages and books written together took
        # the write stage's peak from 14.9 to 16.3-19.0 GiB.
        report.lists["print_pages_written"], report.lists["print_pages_reused"] = _write_print_pages(
            staging, outputs.print_pages, carried, laps)
        s = lap("write_print_pages", s)
        gone = books_linked()
        s = lap("write_book_links_wait", s)
        todo += [(book, carried.path(rel), None) for (book, rel), kept in zip(jobs, same, strict=True)
                 if kept and rel in gone]
        report.lists["workbooks_written"], report.lists["workbooks_reused"] = len(todo), len(jobs) - len(todo)
        report.lists["sheets_kept_in_books_written"] = sum(len(keep.sheets) for _, _, keep in todo if keep)
        write_workbooks(quarantine_books + todo, workers=os.cpu_count() or 1)
        s = lap("write_workbooks", s)
        csvs.result()
        if reported is not None:
            reported.result()
        report.lists["spares_unclaimed"] = spares.remove_unclaimed(keep=len(carried.manifest))
        carried.write_manifest()
        lap("write_csv_wait", s)
        report.timings["write"] = round(time.perf_counter() - t, 3)
        # CPU seconds the kernel spent for the process while writing (making tens of thousands of files, and
        # reading the last books): on a disk that is slow to allocate files, this is where it shows.
        report.timings["write_kernel_cpu"] = round(os.times().system - kernel, 3)
        # and in the process's own code, all threads: against the stage's time, how busy the cores were
        report.timings["write_user_cpu"] = round(os.times().user - user, 3)
        report.timings.update(laps)
        if meter is not None:
            report.peak_memory_gib["write"] = meter.mark("write")
        report.timings["total"] = round(time.perf_counter() - started, 3)
        report.lists["files_from_spares"] = spares.files_taken
        report.lists["folders_from_spares"] = spares.folders_taken
        report.lists["workbooks"] = len(outputs.books)
        report.lists["community_workbooks"] = len(outputs.community_books)
        (staging / "run.json").write_text(run_json(report, indent=2), encoding="utf-8")
        t = time.perf_counter()
        retiring = _swap(staging, out, report.run_id)
        report.timings["swap"] = round(time.perf_counter() - t, 3)
    except BaseException:
        matches_todo.cancel()  # (if it was never given) the CSVs' thread stops waiting for it
        aside.shutdown(wait=True)  # the CSVs' thread is done with staging before it is removed
        if carried is not None:
            carried.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        aside.shutdown(wait=True)
        if carried is not None:
            carried.close()
        gc.unfreeze()
    return retiring


def run_json(report: RunReport, indent: int | None = None) -> str:
    return json.dumps(asdict(report), ensure_ascii=False, indent=indent, default=str)


def rewrite_run_json(out: Path, report: RunReport) -> None:
    """run.json again once the run's record is in the database (with its time), replaced whole: a reader
    sees the published file or the new one, never half of it."""
    path = out.resolve() / "run.json"
    fresh = path.with_name(".run.json.new")
    fresh.write_text(run_json(report, indent=2), encoding="utf-8")
    fresh.replace(path)


def _write_csvs(staging: Path, outputs: RunOutputs, matches: Future[list[Part]], laps: dict[str, float]) -> None:
    s = time.perf_counter()
    write_csv(outputs.call_list, staging / "call_list.csv")
    write_csv(outputs.coverage, staging / "coverage.csv")
    for name, frame in outputs.tables.items():
        write_csv(frame, staging / f"{name}.csv")
    outputs.matches.place(staging, matches.result(), laps)
    laps["write_csv"] = round(time.perf_counter() - s, 3)


def _write_print_pages(staging: Path, pages: Iterable[PrintPage], carried: CarriedOver,
                       laps: dict[str, float]) -> tuple[int, int]:
    """Pages written and reused. Which are the last output's is known first (by digest): they are linked by
    threads while the others are written. A function of its own so that the pages, whose renders hold the whole
    call list, are let go as soon as they are written."""
    placed = []
    t = time.perf_counter()
    for page in pages:  # the first page waits for the call list's row digests, in walking order
        street, community, file_name = page.place
        rel = f"print/{safe_name(street)}/{safe_name(community)}/{file_name}"
        placed.append((page, rel, carried.over(rel, page.digest)))
    laps["write_page_digests"] = round(time.perf_counter() - t, 3)  # a part of write_print_pages
    linked = carried.link()  # while the changed pages are written
    todo = [(page, carried.target(rel)) for page, rel, same in placed if not same]
    t = time.perf_counter()
    written = _write_pages(todo)
    laps["write_pages_changed"] = round(time.perf_counter() - t, 3)  # a part of write_print_pages
    waited = time.perf_counter()
    gone = linked()
    laps["write_page_links_wait"] = round(time.perf_counter() - waited, 3)  # a part of write_print_pages
    written += _write_pages([(page, carried.target(rel)) for page, rel, same in placed if same and rel in gone])
    return written, len(placed) - written


def _write_pages(todo: list[tuple[PrintPage, str]]) -> int:
    """The pages written at their targets. Each block's bodies (polars) are made by threads up to BODIES_AHEAD
    blocks ahead of the pages being written (Python and the file system). With one thread ahead the writer
    mostly waited for it (at 5M residents, of the pages' 2.6 s the writing thread's own CPU was 0.4 s); with
    two, a 5M city's two-hour refresh wrote its 8,900-9,300 changed pages in 2.02-2.10 s against 2.33-2.45
    (run alternately). At most BODIES_AHEAD + 1 blocks' bodies are held."""
    groups = [list(group) for _, group in itertools.groupby(todo, key=lambda job: job[0].block)]

    def query_of(group: list[tuple[PrintPage, str]]) -> Callable[[], object] | None:
        first = group[0][0]
        return None if first.bodies is None else partial(first.bodies, [page.key for page, _ in group])

    made = [query_of(group) for group in groups]  # only the block's pages to be written are rendered
    with ThreadPoolExecutor(max_workers=BODIES_AHEAD, thread_name_prefix="page-bodies") as ahead:
        coming: dict[int, Future] = {}

        def ask(i: int) -> None:
            if i < len(made) and made[i] is not None:
                coming[i] = ahead.submit(made[i])

        for i in range(BODIES_AHEAD):
            ask(i)
        for i, group in enumerate(groups):
            bodies = coming.pop(i).result() if i in coming else None
            ask(i + BODIES_AHEAD)
            for page, target in group:
                write_into(target, page.render(bodies) if bodies is not None else page.render())
            del bodies
    return len(todo)


def _read_ahead(paths: list[str]) -> None:
    """The last books whose sheets are kept, asked of the disk in the order they will be read (the kernel reads
    them while the pages are written): at 20M the last output (2.8 GB of books) was mostly out of the page
    cache by then, and reading it was two fifths of the book threads' time."""
    for path in paths:
        read_ahead(path)


safe_name = lru_cache(maxsize=65536)(safe_file_name)  # a street's and a community's name, for each of their files

MANIFEST = "books.json"
BODIES_AHEAD = 2  # page blocks whose bodies are being made while one is written (_write_pages)
LINKERS = 8  # threads linking the unchanged books and pages (CarriedOver.link)
_CODE = "_code"  # the manifest's entry for the code the files were laid out by


def layout_code_files() -> list[Path]:
    """The code that lays out the books, the pages and the quarantined rows' CSVs."""
    root = Path(__file__).resolve().parents[1]
    seeds = [root / "flows" / "workbooks.py", root / "flows" / "xlsx.py", root / "transforms" / "print_sheet.py",
             root / "flows" / "csv_aside.py"]  # write_csv: the quarantined rows' CSVs are carried over too
    return with_transforms_they_import(seeds)


@cache
def layout_fingerprint() -> str:
    """A new layout writes every file again."""
    return code_fingerprint(layout_code_files(), ("polars",))


def _frame_digest(frame: pl.DataFrame, label: str) -> str:
    """A digest of everything a frame shows (its columns, types and rows, in order), for a book made of it
    alone: a source's quarantined rows, which stay the same while the source does (at 20M residents the
    vaccination export's 1.1 M quarantined rows made a 107 MB workbook at every refresh)."""
    h = hashlib.sha256(repr((label, list(frame.schema.items()))).encode())
    h.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()


def last_manifest(out: Path) -> dict[str, str | list]:
    """The last output's files and their digests, if it was laid out by this code (else none is carried over)."""
    path = out / MANIFEST
    if not path.exists():
        return {}
    previous = json.loads(path.read_text(encoding="utf-8"))
    return previous if previous.get(_CODE) == layout_fingerprint() else {}


class CarriedOver:
    """Books and pages whose digest (everything they show but the time they were made) is the last output's
    are hard-linked from it instead of being made again: a two-hourly refresh rewrites only the grids where
    something happened, and of a book written again, copies the sheets that are the same (flows.workbooks.Keep).
    The manifest maps each file to its digest (a book's: with its sheets'), under the layout code's fingerprint."""

    def __init__(self, out: Path, staging: Path, spares: SpareFiles) -> None:
        self.out, self.staging, self.spares = out, staging, spares
        self._out, self._staging = str(out), str(staging)  # places are joined as text: a city has 143,000
        self.folders: set[str] = set()  # made already (relative): a city's 143,000 files are in 15,000 folders
        self.manifest: dict[str, str | list] = {_CODE: layout_fingerprint()}
        self._unlinked: list[tuple[str, bool]] = []  # carried over, to be linked: (rel, the pool's file is there)
        self._linkers: ThreadPoolExecutor | None = None
        self.previous = last_manifest(out)

    def target(self, rel: str) -> str:
        """Where the file at rel (a relative POSIX path) goes in the output being written."""
        return f"{self._staging}/{rel}"

    def path(self, rel: str) -> Path:
        return Path(self.target(rel))

    def over(self, rel: str, digest: str, sheets: tuple[str, ...] | None = None) -> bool:
        """True when the file at rel is the last output's (the same digest): link() links it from there, and
        says if it was gone. False: it is the caller's to write (with flows.spare_files.write_into, at
        target(rel)), and an empty file from the pool is there for it if the pool had one."""
        self.manifest[rel] = digest if sheets is None else [digest, list(sheets)]
        last = self.previous.get(rel)
        self._folder(rel.rpartition("/")[0])
        if (last[0] if isinstance(last, list) else last) != digest:
            self.spares.file(rel)
            return False
        self._unlinked.append((rel, self.spares.in_the_way(rel)))
        return True

    def link(self) -> Callable[[], set[str]]:
        """The files over() said are carried over, linked from the last output by threads while the caller
        goes on; the function returned waits for them and gives those that were gone from it (deleted by hand),
        for the caller to write anew.
        By threads, each a folder at a time: in a 20M refresh a link took about 100 us of the main thread
        (118,000 of them, 12 s), where offline the same links took 11-25 us; eight threads took 3.3 s for the
        books' 54,600 and 2.0 for the pages' 65,500 (sixteen no less)."""
        folders: dict[str, list[tuple[str, bool]]] = {}
        for rel, spare in self._unlinked:
            folders.setdefault(rel.rpartition("/")[0], []).append((rel, spare))
        self._unlinked = []
        if self._linkers is None:
            self._linkers = ThreadPoolExecutor(max_workers=LINKERS, thread_name_prefix="link")
        groups = list(folders.values())
        linking = [self._linkers.submit(self._link_folders, groups[i:i + 64]) for i in range(0, len(groups), 64)]
        return lambda: set().union(*(job.result() for job in linking))

    def close(self) -> None:
        """Waits for the links begun (before the staging folder is removed, or the output swapped in)."""
        if self._linkers is not None:
            self._linkers.shutdown(wait=True)

    def _link_folders(self, folders: list[list[tuple[str, bool]]]) -> list[str]:
        return [rel for files in folders for rel in self._link_folder(files)]

    def _link_folder(self, files: list[tuple[str, bool]]) -> list[str]:
        gone = []
        for rel, spare in files:
            target = self.target(rel)
            if spare:
                os.unlink(target)
            # Linked without asking first whether the last file is there: at 20M, looking up each of 56,000
            # last books twice (exists, then link) cost 2.5 s more than once.
            try:
                hard_link(f"{self._out}/{rel}", target)
            except FileNotFoundError:
                gone.append(rel)
        return gone

    def _folder(self, rel: str) -> None:
        if not rel or rel in self.folders:
            return
        self._folder(rel.rpartition("/")[0])
        if not self.spares.folder(rel):
            os.makedirs(self.target(rel), exist_ok=True)
        self.folders.add(rel)

    def keep(self, rel: str, sheets: tuple[str, ...]) -> Keep | None:
        """The sheets of a book to be written that are as the last output's book at the same place showed them."""
        last, old = self.previous.get(rel), f"{self._out}/{rel}"
        if not isinstance(last, list) or len(last[1]) != len(sheets):
            return None  # (a last book that is gone is found so when it is read: it is then written whole)
        same = tuple(i for i, (a, b) in enumerate(zip(last[1], sheets, strict=True)) if a and a == b)
        return Keep(Path(old), same) if same else None

    def write_manifest(self) -> None:
        (self.staging / MANIFEST).write_text(json.dumps(self.manifest, ensure_ascii=False, indent=0),
                                             encoding="utf-8")


def _write_report_timed(staging: Path, outputs: RunOutputs, report: RunReport, laps: dict[str, float]) -> None:
    s = time.perf_counter()
    _write_report(staging, outputs.report_html, outputs.report_top_html, outputs.coverage, report)
    laps["write_report"] = round(time.perf_counter() - s, 3)


def _write_report(staging: Path, page: str, top: str | None, coverage: pl.DataFrame, report: RunReport) -> None:
    """report.html, and report.png of its top (the charts) for the group chat, if Chromium is here. The picture
    is taken of the top alone, so its time does not grow with the city; one that fails is said in run.json and
    does not hold back the sheets."""
    from flows.browser import chromium, screenshot

    path = staging / "report.html"
    path.write_text(page, encoding="utf-8")
    if chromium() is None:
        report.lists["report_png"] = "skipped: Chromium not installed"
        return
    with tempfile.TemporaryDirectory(prefix="gridsweep-report-") as folder:
        shown = Path(folder) / "report.html"
        shown.write_text(top or page, encoding="utf-8")
        try:
            screenshot(shown, staging / "report.png", height=min(4000, 640 + 24 * chart_bars(coverage)))
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            (staging / "report.png").unlink(missing_ok=True)
            report.lists["report_png"] = f"failed: {type(exc).__name__}"
            return
    report.lists["report_png"] = "report.png"


def _swap(staging: Path, out: Path, run_id: str) -> Path | None:
    """The new outputs in place of the old; returns the old, renamed to be emptied into the pool the next
    output is written into (flows.spare_files: deleting them would slow the next refresh's making of files,
    if it comes soon), or None if there was none."""
    previous = beside(out, PREVIOUS, run_id)
    if out.exists():
        out.rename(previous)
    try:
        staging.rename(out)
    except BaseException:
        if previous.exists() and not out.exists():
            previous.rename(out)
        raise
    if not previous.exists():
        return None
    # Renamed first: recover_interrupted_swap never takes a half-emptied output back for a whole one.
    return previous.rename(beside(out, RETIRING, run_id))
