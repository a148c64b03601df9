"""The command line as data staff use it: `gridsweep run` on the bundled samples, and a bad file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def gridsweep(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "gridsweep"
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "flows.cli", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_run_on_samples_then_bad_input(tmp_path):
    done = gridsweep("run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    for name in ("call_list.csv", "coverage.csv", "matches/01-0001.csv", "run.json"):
        assert (out / name).exists(), name
    assert list((out / "sheets").rglob("*.xlsx"))
    assert (tmp_path / "state" / "gridsweep.duckdb").exists()
    assert "in scope" in done.stdout
    before = (out / "run.json").read_bytes()

    bad = tmp_path / "tests.csv"
    bad.write_text("采样编号,手机号码,采样时间\nT1,13800138000,2022-05-20 10:00\n", encoding="utf-8")
    samples = Path(__file__).resolve().parents[1] / "data_samples"
    failed = gridsweep("run", "--roster", str(samples / "roster.csv"), "--tests", str(bad), "--since",
                       "2022-05-18T18:00", "--as-of", "2022-05-20T18:00", "--out", str(out), cwd=tmp_path)
    assert failed.returncode == 2
    assert "tests.csv" in failed.stderr and "姓名" in failed.stderr
    assert (out / "run.json").read_bytes() == before


def test_bad_arguments_exit_2(tmp_path):
    done = gridsweep("run", "--roster", "r.csv", "--tests", "t.csv", "--since", "yesterday", "--as-of",
                     "2022-05-20", cwd=tmp_path)
    assert done.returncode == 2
    assert "--since" in done.stderr
