"""bench/loading_memory.py, which samples the loading process's memory through a campaign's loading: it must
read the real loading process (not its own), and say each source's rows as read."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Loaded from its file, not by putting bench/ on sys.path (bench/expectations.py would hide the package).
_SPEC = importlib.util.spec_from_file_location("bench_loading_memory", ROOT / "bench" / "loading_memory.py")
loading_memory = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(loading_memory)


def test_a_process_s_resident_memory_is_read_as_it_grows():
    before = loading_memory.resident_gib(os.getpid())
    held = bytearray(300 * 2**20)  # touched: bytearray zero-fills, so its pages are resident
    after = loading_memory.resident_gib(os.getpid())
    assert after - before > 0.25, (before, after)
    del held
    assert loading_memory.resident_gib(2**22 + 12345) is None  # no such process


def test_the_bench_samples_the_loading_process_through_every_source(tmp_path):
    timeline = tmp_path / "timeline.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "loading_memory.py"), "--config",
                           str(ROOT / "data_samples" / "campaign.toml"), "--every", "0.05", "--timeline",
                           str(timeline), "--work", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    for name in ("roster", "tests", "vaccinations"):
        raw = (ROOT / "data_samples" / f"{name}.csv").read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:  # the sample's test export is in GB18030, as some systems export
            text = raw.decode("gb18030")
        rows = sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1
        source = figures["sources"][name]
        assert source["rows"] == rows, name
        assert 0.1 < source["in_gib"] <= source["peak_gib"] <= figures["peak_gib"], (name, source)
    # The loading process's memory, not the bench's own; and that process ended with the bench's loading.
    assert figures["loading_pid"] != figures["bench_pid"] and figures["started_gib"] > 0.1
    assert loading_memory.resident_gib(figures["loading_pid"]) is None
    samples = json.loads(timeline.read_text(encoding="utf-8"))
    assert len(samples) >= 4 and all(a[0] <= b[0] for a, b in zip(samples, samples[1:], strict=False))
    assert max(g for _, g in samples) == figures["peak_gib"]
    assert list(tmp_path.glob("loading-memory-*")) == []  # the spills' folder removed
