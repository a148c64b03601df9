"""Wall time and peak memory of one command, for the benches.

ru_maxrss of RUSAGE_CHILDREN is the largest child a process has waited for so far: a bench that generates
a city and then refreshes it, asking its own counter, reported the generator's peak as the refresh's. Each
command is therefore run under a fresh wrapper process whose only child it is."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

_WRAP = ("import resource, subprocess, sys; "
         "r = subprocess.run(sys.argv[3:], stdout=subprocess.DEVNULL if sys.argv[2] == 'quiet' else None); "
         "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
         "sys.exit(r.returncode)")


def run_measured(cmd: list[str], env: dict, cwd: Path, quiet: bool = False) -> tuple[float, float]:
    """Wall seconds and the command's own peak RSS in GiB (its largest process, children included). Its
    output goes where this bench's goes (or nowhere, quiet), never through a pipe: a refresh killed by the
    OOM killer left its temporary Prefect server holding the pipe open, and the bench waited on it for good."""
    with tempfile.TemporaryDirectory() as tmp:
        peak = Path(tmp) / "peak"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", _WRAP, str(peak), "quiet" if quiet else "loud", *cmd], check=True,
                       env=env, cwd=cwd)
        return time.perf_counter() - t, int(peak.read_text()) / 1024 / 1024
