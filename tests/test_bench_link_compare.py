"""The side-by-side linking bench (bench/link_compare.py, run by bench/accuracy.py) on the bundled samples:
it calls the refresh's own link and rules, so a change to their signatures breaks it: the rules gained
their kept state in f159740 and the bench failed at that call, unnoticed, until 2026-12-05."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_link_compare_runs_gridsweep_on_the_samples(tmp_path):
    out = tmp_path / "gridsweep"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "link_compare.py"), "--data", str(ROOT / "data_samples"),
         "--linker", "gridsweep", "--out", str(out)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["linker"] == "gridsweep" and result["residents"] == 2000
    assert 0 < result["link_seconds"] < 120 and result["link_peak_rss_gib"] > 0
    links, untested = result["scores"]["links"], result["scores"]["untested"]
    assert links["test"]["precision"] >= 0.999 and links["test"]["recall"] >= 0.99, links
    assert untested["recall"] >= 0.99, untested
    assert result["misses_by_noise"], "no misses-by-noise table"
    # The call list it wrote is the rules' (a header and the untested, at least)
    lines = (out / "call_list.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) > untested["truly_untested"] // 2
