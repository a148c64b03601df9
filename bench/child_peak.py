"""Wall time and peak memory of one command, for the benches.

ru_maxrss of RUSAGE_CHILDREN is the largest child a process has waited for so far: a bench that generates
a city and then refreshes it, asking its own counter, reported the generator's peak as the refresh's. Each
command is therefore run under a fresh wrapper process whose only child it is."""

from __future__ import annotations

import shutil
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


class FoldersAside:
    """Folders a bench starts afresh, renamed out of the way now and deleted once the run is over. Deleting
    a refresh's thousands of files just before the next one made ext4 look past every inode freed in the last
    minute or more for each file the run created (recently_deleted in find_inode_bit): at 1M residents the write
    stage took 4.8 s when the last run's files were gone a minute before and 6.7-8.2 s when they went just
    before, most of the difference kernel time. A scheduled refresh retires its last outputs after writing."""

    def __init__(self, *folders: Path):
        self.aside = []
        for folder in folders:
            if folder.exists():
                moved = folder.with_name(f".{folder.name}.aside-{time.time_ns()}")
                folder.rename(moved)
                self.aside.append(moved)

    def __enter__(self) -> FoldersAside:
        return self

    def __exit__(self, *exc: object) -> None:
        for moved in self.aside:
            shutil.rmtree(moved, ignore_errors=True)


def refresh_figures(report: dict, wall: float, peak: float) -> dict:
    """What the benches print of one refresh: its run.json (report) with the wall time and peak of its process."""
    return {
        "wall_seconds": round(wall, 1), "peak_gib": round(peak, 2), "stages": report["timings"],
        "stage_peak_gib": report.get("peak_memory_gib", {}),
        "records_linked_now": report["linking"]["records_linked_now"],
        "records_reused": report["linking"]["records_reused"],
        "residents_ruled": report.get("rules", {}).get("residents_ruled"),
        "workbooks_written": report["lists"].get("workbooks_written"),
        "workbooks_reused": report["lists"].get("workbooks_reused"),
        "sheets_kept_in_books_written": report["lists"].get("sheets_kept_in_books_written"),
        "print_pages_written": report["lists"].get("print_pages_written"),
        "print_pages_reused": report["lists"].get("print_pages_reused"),
        "report_png": report["lists"].get("report_png"),
        "files_from_spares": report["lists"].get("files_from_spares"),
        "unchanged_sources": [k for k, v in report["inputs"].items() if v.get("unchanged_since_last_load")],
        "rows_taken_from_last_load": {k: v.get("rows_taken_from_last_load") for k, v in report["inputs"].items()},
    }
