"""Benchmark: generate N residents (default 1,000,000), run the whole refresh as a Prefect flow, and
report wall time, peak memory per process and the scores against the generator's truth.

    python bench/refresh_1m.py [--residents 1000000] [--seed 1] [--work bench/work]

Generation and the refresh run in separate processes so each one's peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from child_peak import FoldersAside, run_measured  # noqa: E402  (bench/, beside this script)
from machine_speed import measure  # noqa: E402


def run(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of one command, its log shown."""
    return run_measured(cmd, env, ROOT)


class FolderPeak:
    """Largest size a folder reached while the block ran: how much DuckDB spilled to its temp directory."""

    def __init__(self, folder: Path):
        self.folder, self.peak, self._stop = folder, 0, threading.Event()

    def _size(self) -> int:
        return sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file()) if self.folder.exists() else 0

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.peak = max(self.peak, self._size())
            except OSError:  # a spill file removed while being measured
                pass

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default=str(ROOT / "bench" / "work"))
    ap.add_argument("--score-only", action="store_true", help="score the outputs of the last run again")
    ap.add_argument("--no-score", action="store_true",
                    help="skip scoring against the truth (it takes minutes at 20M)")
    ap.add_argument("--duckdb-memory-limit", help="e.g. 1GB: DuckDB must then spill to its temp directory")
    args = ap.parse_args()
    work = Path(args.work) / f"n{args.residents}_s{args.seed}"
    data, out, state = work / "data", work / "out", work / "state"
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRIDSWEEP_STATE_DIR=str(state))
    if args.duckdb_memory_limit:
        env["GRIDSWEEP_DUCKDB_MEMORY_LIMIT"] = args.duckdb_memory_limit
        work = work.with_name(work.name + f"_ddb{args.duckdb_memory_limit}")
        out, state = work / "out", work / "state"
        env["GRIDSWEEP_STATE_DIR"] = str(state)
        work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    results: dict = {"residents": args.residents, "seed": args.seed}
    if not (data / "campaign.toml").exists():
        wall, peak = run([py, "-m", "flows.cli", "generate", "--residents", str(args.residents), "--seed",
                          str(args.seed), "--out", str(data)], env)
        results["generate"] = {"seconds": round(wall, 1), "peak_gib": round(peak, 2)}
    if not args.score_only:
        results["machine"] = measure(work)  # how fast the machine is today (bench/machine_speed.py)
        # A full refresh: a fresh database, so no linking decision or workbook is reused from a last run.
        with FoldersAside(state, out), FolderPeak(state / "duckdb_tmp") as spill:
            wall, peak = run([py, "-m", "flows.cli", "run", "--config", str(data / "campaign.toml"), "--out",
                              str(out)], env)
        results["duckdb"] = {"memory_limit": args.duckdb_memory_limit or "default",
                             "spilled_peak_gib": round(spill.peak / 2**30, 2)}
    else:
        wall, peak = float("nan"), float("nan")
    run_json = json.loads((out / "run.json").read_text(encoding="utf-8"))
    results["refresh"] = {
        "wall_seconds_including_prefect_start": round(wall, 1),
        "flow_seconds": run_json["timings"]["total"],
        "stages": run_json["timings"],
        "stage_peak_gib": run_json.get("peak_memory_gib", {}),
        "peak_gib": round(peak, 2),
        "linking": {k: v for k, v in run_json["linking"].items() if k != "sql_seconds"},
    }
    # Written before scoring too: scoring a city reads its truth (67 M links at 20M), and a refresh's figures
    # should not be lost if that fails.
    (work / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.no_score:
        print(json.dumps(results, ensure_ascii=False, indent=1))
        return 0
    from flows.evaluate import score_run
    from flows.settings import load_settings

    settings = load_settings(data / "campaign.toml", out=str(out))
    results["scores"] = score_run(settings, data)
    print(json.dumps(results, ensure_ascii=False, indent=1))
    (work / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
