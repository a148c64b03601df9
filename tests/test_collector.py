"""The garbage collector during a refresh (flows.collector): held back while it runs, given back after, and
the fork server's children started with the server's imports frozen."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flows.refresh
from flows.collector import FULL_EVERY
from flows.refresh import new_report, process
from flows.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def _settings(tmp_path: Path):
    return load_settings(None, roster=str(tmp_path / "roster.csv"), tests=str(tmp_path / "tests.csv"),
                         since="2022-05-18T18:00:00", as_of="2022-05-20T18:00:00",
                         out=str(tmp_path / "out"), db=str(tmp_path / "state" / "gridsweep.duckdb"))


@pytest.mark.parametrize("fails", [False, True])
def test_a_refresh_runs_with_fewer_full_collections_and_gives_the_setting_back(tmp_path, monkeypatch, fails):
    settings = _settings(tmp_path)
    seen = []

    def body(*args, **kwargs):
        seen.append(gc.get_threshold())
        if fails:
            raise RuntimeError("the refresh failed")
        return "done"

    monkeypatch.setattr(flows.refresh, "_process", body)
    before = gc.get_threshold()
    assert before[2] < FULL_EVERY  # Python's default (10): otherwise this test shows nothing
    if fails:
        with pytest.raises(RuntimeError, match="the refresh failed"):
            process(settings, {}, new_report(settings), 0.0)
    else:
        assert process(settings, {}, new_report(settings), 0.0) == "done"
    assert seen == [(before[0], before[1], FULL_EVERY)]
    assert gc.get_threshold() == before


def test_the_fork_servers_children_start_with_its_imports_frozen():
    # In a process of its own: a fork server already started in this one (by another test) keeps its preload.
    script = textwrap.dedent("""
        import gc, json, multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from flows.loading import start_fork_server
        start_fork_server()
        # as the workbook helpers are started (flows.workbooks): the server the loading started
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
            frozen = pool.submit(gc.get_freeze_count).result()
            threshold = pool.submit(gc.get_threshold).result()
        print(json.dumps({"frozen": frozen, "threshold": threshold, "here": gc.get_freeze_count()}))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "GX_ANALYTICS_ENABLED": "false"})
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    # Great Expectations alone makes hundreds of thousands of objects; the parent here froze none.
    assert figures["frozen"] > 100_000 and figures["here"] == 0
    assert figures["threshold"][2] == FULL_EVERY
