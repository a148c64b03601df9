"""How a run's CSV files are written, and the biggest of them written by a process of its own at the lowest
CPU priority, from the moment their rows are known.

A 20M city's matches.csv (every decision, 72 M rows, 8.6 GB) took 22-27 s to write. Written by a thread of the
run beside the books and pages, it took the second core from them: the write stage was 36.5 s with it and
21.0 s without it. Started once the link is done, in a process the kernel runs only when the run's own
threads leave a core idle (nice 19), the decisions' files (flows.match_parts) are written during the rules
and the sheets; publish waits for them and moves them into the output.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from flows.beside_output import MATCHES, beside, found_beside

_ROOT = Path(__file__).resolve().parents[1]


def write_csv(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> None:
    """UTF-8 with a BOM: Excel and WPS then show the Chinese text without an import dialog. A scan (a city's
    decisions on disk) is streamed to the file, never held whole."""
    if isinstance(frame, pl.LazyFrame):
        frame.sink_csv(path, include_bom=True)
    else:
        frame.write_csv(path, include_bom=True)


class AsideCsv:
    """Scans written to CSV files in one folder, in order, by `python -m flows.csv_aside` (the plans, serialised
    by polars, with their file names, on its standard input). wait() gives the folder or raises; stop() ends
    the process and removes the folder."""

    def __init__(self, jobs: list[tuple[bytes, str]], folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        self._err = tempfile.TemporaryFile()  # a file, not a pipe: a writer saying much can never block on it
        # In the run's folder (a scan's paths may be relative to it), with this code importable from there.
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
        self._proc = subprocess.Popen([sys.executable, "-m", "flows.csv_aside", str(folder)], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err)
        stdin, self._proc.stdin = self._proc.stdin, None  # given whole here: communicate() only reads
        try:
            stdin.write(pickle.dumps(jobs))
        except BrokenPipeError:  # it died at once: wait() says why
            pass
        finally:
            stdin.close()
        self.seconds: float | None = None  # the writer's own time, once it is done

    def wait(self) -> Path:
        out, _ = self._proc.communicate()
        if self._proc.returncode != 0:
            shutil.rmtree(self.folder, ignore_errors=True)
            self._err.seek(0)
            lines = self._err.read().decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError(f"writing {self.folder.name} failed (exit {self._proc.returncode}): "
                               f"{lines[-1] if lines else 'no message'}")
        self.seconds = float(out.decode().strip() or "nan")
        return self.folder

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._err.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_aside(frames: list[tuple[pl.LazyFrame, str]], out: Path, run_id: str) -> AsideCsv:
    """The frames' CSVs (each under its file name) begun aside for the output folder out, in a folder beside
    it (on its file system: publish moves them in by a rename); what a refresh killed before publishing left
    there is removed first (one refresh runs at a time)."""
    jobs = [(frame.serialize(), name) for frame, name in frames]
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in found_beside(out, MATCHES):
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:  # one file, as refreshes before 2026-12-06 wrote matches.csv
            old.unlink(missing_ok=True)
    return AsideCsv(jobs, beside(out, MATCHES, run_id))


def main() -> int:
    os.nice(19)  # the run's own threads first: these files are written with the cores they leave idle
    t = time.perf_counter()
    folder = Path(sys.argv[1])
    for plan, name in pickle.loads(sys.stdin.buffer.read()):
        write_csv(pl.LazyFrame.deserialize(plan), folder / name)
    sys.stdout.write(f"{time.perf_counter() - t:.3f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
