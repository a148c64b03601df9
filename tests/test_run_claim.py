"""Folders of refreshes that were killed are removed by the next refresh; a running refresh's never are."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from flows.run_claim import RunClaim, remove_abandoned

ROOT = Path(__file__).resolve().parents[1]
_HOLD = ("import sys, time; from pathlib import Path; from flows.run_claim import RunClaim; "
         "folder = Path(sys.argv[1]); RunClaim(folder, 'alive'); (folder / 'records-alive').mkdir(); "
         "(folder / 'records-alive' / 'test-00000.parquet').write_bytes(b'x'); print('ready', flush=True); "
         "time.sleep(600)")


def test_a_killed_refresh_s_folders_go_and_a_running_one_s_stay(tmp_path):
    folder = tmp_path / "duckdb_tmp"
    folder.mkdir()
    (folder / "facts-old").mkdir()  # left by a refresh before claims existed: nobody holds it
    (folder / "facts-old" / "tests-00000.parquet").write_bytes(b"x")
    (folder / "duckdb_temp_storage-0.tmp").write_bytes(b"x")  # DuckDB's own: not a run folder
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert remove_abandoned(folder) == ["facts-old"]
        assert (folder / "records-alive" / "test-00000.parquet").exists()
        assert (folder / ".run-alive.lock").exists()
        holder.send_signal(signal.SIGKILL)  # as the OOM killer ends a refresh: nothing of its own cleans up
        holder.wait(timeout=30)
        assert (folder / "records-alive").exists()
        assert remove_abandoned(folder) == ["records-alive"]
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in folder.iterdir()) == ["duckdb_temp_storage-0.tmp"]


def test_a_refresh_that_ends_leaves_no_claim(tmp_path):
    claim = RunClaim(tmp_path, "done")
    (tmp_path / "records-done").mkdir()
    assert remove_abandoned(tmp_path) == []
    claim.release()
    claim.release()  # a second release does nothing
    assert not (tmp_path / ".run-done.lock").exists()
    assert remove_abandoned(tmp_path) == ["records-done"]
