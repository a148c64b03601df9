"""bench/cpu_trace.py, which says how many cores a bench kept busy over time: it must hand back the command's
exit code (a bench that failed must not look like one that ran) and count busy time out of the machine's."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Loaded from its file, not by putting bench/ on sys.path: bench/expectations.py would then hide the
# expectations package from every test after this one in the worker.
_SPEC = importlib.util.spec_from_file_location("bench_cpu_trace", ROOT / "bench" / "cpu_trace.py")
cpu_trace = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cpu_trace)
cpu_jiffies = cpu_trace.cpu_jiffies


def test_the_trace_counts_busy_time_out_of_all_cores_and_keeps_the_commands_exit_code(tmp_path):
    spin = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < 1.2: pass\nraise SystemExit(3)"
    before = cpu_jiffies()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "cpu_trace.py"), "--every", "0.2", "--out",
                           str(tmp_path / "trace.csv"), "--", sys.executable, "-c", spin],
                          capture_output=True, text=True, timeout=120)
    after = cpu_jiffies()
    assert done.returncode == 3, done.stderr
    assert "cores busy on average" in done.stderr
    # the command spun one core for 1.2 s: at least about that much busy time passed on the machine
    hz = os.sysconf("SC_CLK_TCK")
    assert after[0] - before[0] >= 1.0 * hz and 0 <= after[1] - before[1] <= after[0] - before[0] <= after[2] - before[2]
    with open(tmp_path / "trace.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 4
    cores = os.cpu_count() or 1
    assert all(0 <= float(r["cores_in_kernel"]) <= float(r["cores_busy"]) <= cores for r in rows)
    assert max(float(r["cores_busy"]) for r in rows) >= 0.5  # the spinning core shows
