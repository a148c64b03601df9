"""The sources loaded in a process of their own, which ends when the last is in.

Reading, parsing, checking and normalising a city's exports leaves the allocators holding memory the run no
longer uses: at 5M residents 4.8 GiB stayed resident after loading with no frame alive (4.3 GiB after
malloc_trim), and linking, the rules and the sheets each carried it on top of their own. Everything loading
makes is on disk (the normalised roster, records and facts in the run's spills, the suites' data docs) but
the figures, the quarantined rows and the suites' verdicts, which come back over a pipe; when the child ends,
what it held goes back to the system with it.

The child is not forked from the flow's process, which runs Prefect's threads and polars' thread pool that a
fork would copy mid-flight: it is forked by multiprocessing's fork server, a clean process started (by exec)
at the flow process's first refresh, which has imported this module and Great Expectations once (and frozen
what they made out of the collector's passes: flows.fork_server_ready). A spawned
child imported them at every refresh, 3.5 s that hid behind reading a city's roster but were most of a
small district's on-demand refresh. The fork server stays for the life of the flow process (345 MB resident)
and the child takes its environment from it; everything the child is told comes through _start's arguments.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from expectations.suites import SuiteResult, import_in_background
from flows.loaded_sources import LoadedSources
from flows.meter import StageMeter, add_time
from flows.record_spill import FactSpill, RecordSpill
from flows.settings import Settings
from flows.sources import SourceLoader, Table

_loader: SourceLoader | None = None  # the child's loader, made once, kept for every source
# Why the child could not make it, said by its first job: an initializer that raises breaks the pool, and
# the flow saw only a child that "ended" (the database locked by another program read as out of memory).
_not_started: str | None = None

# Polars' allocator (jemalloc) hands freed pages back to the system after half a second, so every slice of a
# source asks the kernel for fresh zeroed pages again (page faults: a fifth of loading's CPU at 20M). The
# child keeps freed pages for 10 s instead and reuses them slice after slice; it is read when the fork server
# starts (the child inherits the server's environment).
ALLOCATOR_VARIABLE = "_RJEM_MALLOC_CONF"
LOADING_ALLOCATOR = "dirty_decay_ms:10000,muzzy_decay_ms:10000"


def _start(settings: Settings, docs_root: Path, failed_docs: Path, spill: RecordSpill,
           facts: FactSpill, slice_rows: int, loaded: Path | None) -> None:
    global _loader, _not_started
    import_in_background()  # Great Expectations (3 s) imports while the roster is read
    try:
        _loader = SourceLoader(settings, docs_root, failed_docs, spill, facts, StageMeter(),
                               {}, {}, slice_rows, LoadedSources(loaded) if loaded is not None else None)
    except Exception as exc:  # noqa: BLE001 (said by the first job, in the flow's process)
        _not_started = f"{type(exc).__name__}: {exc}"


def _started() -> SourceLoader:
    if _loader is None:
        raise RuntimeError(f"the loading process could not start: {_not_started}")
    return _loader


def _load(name: str, opener: Callable[[], Table]) -> dict:
    loader = _started()
    loader.timings.clear()  # this source's times: the flow adds them up
    return loader.load(name, opener) | {
        "timings": dict(loader.timings), "peaks": dict(loader.peaks), "spills": (loader.spill, loader.facts),
    }


def _finish() -> dict:
    loader = _started()
    loader.timings.clear()
    loader.finish()
    return {"suites": dict(loader.suites), "timings": dict(loader.timings), "peaks": dict(loader.peaks)}


def _context() -> multiprocessing.context.BaseContext:
    """The fork server's context. The preload takes effect when the server starts (the first refresh)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # as expectations.suites imports it
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["flows.loading", "great_expectations", "flows.fork_server_ready"])
    return ctx


def _ensure_server() -> None:
    """Starts the fork server if it is not running, with the loading allocator's setting in its environment
    only: the flow's own process and the other programs it starts keep theirs. The setting goes after what is
    there (polars' own defaults, which importing polars puts in the variable, and any the user gave), as the
    allocator reads the last value of each option."""
    given = os.environ.get(ALLOCATOR_VARIABLE)
    os.environ[ALLOCATOR_VARIABLE] = f"{given},{LOADING_ALLOCATOR}" if given else LOADING_ALLOCATOR
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if given is None:
            del os.environ[ALLOCATOR_VARIABLE]
        else:
            os.environ[ALLOCATOR_VARIABLE] = given


def start_fork_server() -> None:
    """Starts the fork server now, for a caller about to do something else that takes seconds (the CLI: import
    Prefect and start its server): its imports (this module, Great Expectations: about 3 s) then overlap that,
    rather than wait for the first source to be read. Its environment is the caller's at this moment."""
    _context()
    _ensure_server()


class LoadingProcess:
    """load() each source in turn, then close(). Its spill and facts are the flow's: what the child wrote
    into their folders is theirs once each load returns. Use as a context manager: the child ends with it,
    also when a source is refused."""

    def __init__(self, settings: Settings, docs_root: Path, failed_docs: Path, spill: RecordSpill,
                 facts: FactSpill, slice_rows: int, loaded: Path | None = None) -> None:
        self.spill, self.facts = spill, facts
        context = _context()
        _ensure_server()
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=context, initializer=_start,
            initargs=(settings, docs_root, failed_docs, spill, facts, slice_rows, loaded))

    def load(self, name: str, opener: Callable[[], Table], timings: dict[str, float],
             peaks: dict[str, float]) -> dict:
        """SourceLoader.load's dict (its table as TableFacts); the stages' seconds are added to timings and their
        peaks (the child's memory) kept in peaks. An InputError in the child is raised here (a file refused, or
        an earlier source's suite failed: the suites run beside the loads)."""
        loaded = self._run(f"loading {name}", timings, peaks, _load, name, opener)
        spill, facts = loaded.pop("spills")
        self.spill.adopt(spill)
        self.facts.adopt(facts)
        return loaded

    def finish(self, timings: dict[str, float], peaks: dict[str, float]) -> dict[str, SuiteResult]:
        """Once every source is loaded: every source's suite (an InputError if one failed and the settings say
        to stop), and the suites' Data Docs made in the child."""
        return self._run("checking the sources' suites", timings, peaks, _finish)["suites"]

    def _run(self, doing: str, timings: dict[str, float], peaks: dict[str, float], job: Callable, *args) -> dict:
        """job(*args) in the child; its stages' seconds added to timings and their peaks kept in peaks."""
        try:
            done = self._pool.submit(job, *args).result()
        except BrokenProcessPool as exc:
            raise RuntimeError(f"the process {doing} ended before it was done (killed, or out of memory?); "
                               "nothing was linked or written") from exc
        for stage, seconds in done.pop("timings").items():
            add_time(timings, stage, seconds)
        for stage, peak in done.pop("peaks").items():
            peaks[stage] = max(peaks.get(stage, 0.0), peak)
        return done

    def pid(self) -> int:
        """The loading process's id (started now if it was not yet): for a bench that samples its memory."""
        return self._pool.submit(os.getpid).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> LoadingProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
