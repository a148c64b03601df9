"""The loading process's memory through the loading of a campaign's sources, sampled from outside it.

    python bench/loading_memory.py --config DIR/campaign.toml [--tests FILE] [--every 1] [--timeline FILE]

Every source is read whole (nothing is taken from a last load) by the refresh's own loading process
(flows.loading.LoadingProcess, forked by the fork server with the loading allocator's setting), into spills in
a temporary folder removed at the end. Its resident memory is read from /proc every --every seconds; printed:
each source's rows, seconds, peak and the memory when it was in (the floor the next source starts from),
as JSON; --timeline writes every sample. A refresh's run.json has each stage's peak, not how memory moves
within a source: this is what found the sources' slices' text held until each source was in (bench/HISTORY.md,
fifty-first session). The temporary folder needs the room of the sources' Parquet parts (about the CSVs' size).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.loading import LoadingProcess  # noqa: E402
from flows.meter import current_rss  # noqa: E402
from flows.record_spill import FactSpill, RecordSpill  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from flows.sources import SLICE_ROWS, file_sources  # noqa: E402


def resident_gib(pid: int) -> float | None:
    """The process's resident memory in GiB, None once it is gone (a live process is never 0)."""
    resident = current_rss(pid)
    return resident / 2**30 if resident else None


class Sampler:
    """(seconds since start, GiB) of one process, every `every` seconds, on a thread of its own."""

    def __init__(self, pid: int, every: float) -> None:
        self.pid, self.every, self.start = pid, every, time.perf_counter()
        self.samples: list[tuple[float, float]] = []  # in time order: taken by this thread and by marks
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> float:
        with self._lock:
            gib = resident_gib(self.pid)
            if gib is not None:
                self.samples.append((round(time.perf_counter() - self.start, 2), round(gib, 3)))
        return gib or 0.0

    def peak_since(self, t: float) -> float:
        return max((g for s, g in self.samples if s >= t), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measure(config: Path, tests: str | None, every: float, work: Path) -> tuple[dict, list]:
    settings = load_settings(config, tests=tests, out=str(work / "out"), db=str(work / "g.duckdb"))
    spill, facts = RecordSpill(work / "records"), FactSpill(work / "facts")
    timings: dict[str, float] = {}
    peaks: dict[str, float] = {}
    figures: dict = {"sources": {}}
    with LoadingProcess(settings, work / "docs", work / "failed", spill, facts, SLICE_ROWS) as loading:
        sampler = Sampler(loading.pid(), every)
        figures |= {"loading_pid": sampler.pid, "bench_pid": os.getpid()}
        try:
            figures["started_gib"] = round(sampler.sample(), 3)
            for name, opener in file_sources(settings).items():
                t = time.perf_counter() - sampler.start
                loaded = loading.load(name, opener, timings, peaks)
                end = sampler.sample()
                figures["sources"][name] = {
                    "rows": loaded["table"].rows, "seconds": round(time.perf_counter() - sampler.start - t, 1),
                    "peak_gib": round(sampler.peak_since(t), 3), "in_gib": round(end, 3)}  # end among them
            t = time.perf_counter() - sampler.start
            loading.finish(timings, peaks)
            sampler.sample()
            figures["suites_gib"] = round(sampler.peak_since(t), 3)
        finally:
            sampler.stop()
    figures["peak_gib"] = max((g for _, g in sampler.samples), default=0.0)
    figures["stage_peak_gib"] = peaks  # as run.json has them: the loader's own meter, at its laps
    return figures, sampler.samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="the campaign file (campaign.toml)")
    ap.add_argument("--tests", help="another test export than the campaign's (a grown one)")
    ap.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("--timeline", help="write every sample here (JSON: [seconds, GiB] pairs)")
    ap.add_argument("--work", help="where the temporary folder goes (default: the system's)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="loading-memory-", dir=args.work) as work:
        figures, samples = measure(Path(args.config), args.tests, args.every, Path(work))
    if args.timeline:
        Path(args.timeline).write_text(json.dumps(samples), encoding="utf-8")
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":  # the fork server's children run this file's top again: nothing runs there
    raise SystemExit(main())
