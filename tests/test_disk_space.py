"""A full disk told in words: which disks, how much is free, how large the last output is, and that it stayed."""

from __future__ import annotations

import errno
import gc
import os
import re
import shutil

import pytest

import flows.cli
import flows.loading
import flows.refresh
from flows.disk_space import disk_full_message, is_disk_full, tree_bytes


def _full(path: str = "/data/out/.out.staging-1/sheets/街道/社区/张三_G1.xlsx") -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def test_a_full_disk_is_told_from_other_failures():
    assert is_disk_full(_full())
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    try:  # raised while handling it (a worker's error re-raised by the loading process's pool)
        try:
            raise _full()
        except OSError as inner:
            raise RuntimeError("the process loading tests ended before it was done") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    # DuckDB's error for its database file or temp folder carries the system's words, no errno
    assert is_disk_full(RuntimeError(f'IO Error: Could not write file "g.duckdb.wal": {os.strerror(errno.ENOSPC)}'))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("bad"))


def test_an_output_is_measured_with_its_linked_books_once(tmp_path):
    out = tmp_path / "out"
    (out / "sheets").mkdir(parents=True)
    (out / "sheets" / "a.xlsx").write_bytes(b"x" * 100_000)
    one = tree_bytes(out)
    assert one >= 100_000
    os.link(out / "sheets" / "a.xlsx", out / "sheets" / "b.xlsx")  # a book carried over: one file, two names
    assert tree_bytes(out) == one
    (out / "call_list.csv").write_bytes(b"y" * 300_000)
    assert tree_bytes(out) >= one + 300_000


def test_the_message_names_the_disks_the_space_and_the_last_output_never_a_file(tmp_path):
    out, state = tmp_path / "out", tmp_path / "state"
    (out / "sheets").mkdir(parents=True)
    (out / "sheets" / "张三_G1.xlsx").write_bytes(b"x" * 2_000_000)
    text = disk_full_message(out, state)  # state not made yet: its disk is the nearest folder's
    assert "the disk is full" in text
    assert f"the last output in {out.resolve()} (2.0 MB) is unchanged" in text
    assert f"output disk ({tmp_path.resolve()})" in text and f"state disk ({state.resolve()})" in text
    free = shutil.disk_usage(tmp_path).free
    shown = [float(n) * (1e9 if unit == "GB" else 1e6)
             for n, unit in re.findall(r"([0-9.]+) (GB|MB) free", text)]
    assert len(shown) == 2 and all(abs(x - free) < 0.2e9 for x in shown)
    assert "张三" not in text
    assert "no output was written" in disk_full_message(tmp_path / "none", state)


def test_the_command_line_says_it_and_exits_3(tmp_path, monkeypatch, capsys):
    def full(settings):
        raise _full(str(settings.out.parent / ".out.staging-1" / "sheets" / "张三_G1.xlsx"))

    monkeypatch.setattr(flows.cli, "_prefect_environment", lambda state: None)
    monkeypatch.setattr(flows.loading, "start_fork_server", lambda: None)
    monkeypatch.setattr(flows.refresh, "refresh", full)
    monkeypatch.setattr(gc, "freeze", lambda: None)
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("{}", encoding="utf-8")
    code = flows.cli.main(["run", "--out", str(out), "--db", str(tmp_path / "state" / "g.duckdb")])
    err = capsys.readouterr().err
    assert code == 3
    assert "the disk is full" in err and f"the last output in {out.resolve()}" in err and "unchanged" in err
    assert "Traceback" not in err and "张三" not in err
    assert (out / "run.json").read_text(encoding="utf-8") == "{}"


def test_the_command_line_prints_what_the_flow_logged_without_measuring_again(tmp_path, monkeypatch, capsys):
    import flows.disk_space

    logged = flows.disk_space.disk_full_message(tmp_path / "out", tmp_path / "state")

    def full(settings):
        exc = _full()
        exc.add_note(logged)  # as flows.refresh.process leaves it
        raise exc

    def walked(folder):
        raise AssertionError("the output measured again")

    monkeypatch.setattr(flows.cli, "_prefect_environment", lambda state: None)
    monkeypatch.setattr(flows.loading, "start_fork_server", lambda: None)
    monkeypatch.setattr(flows.refresh, "refresh", full)
    monkeypatch.setattr(flows.disk_space, "tree_bytes", walked)
    monkeypatch.setattr(gc, "freeze", lambda: None)
    code = flows.cli.main(["run", "--out", str(tmp_path / "out"), "--db", str(tmp_path / "state" / "g.duckdb")])
    assert code == 3 and capsys.readouterr().err == logged + "\n"


def test_other_failures_still_raise_from_the_command_line(tmp_path, monkeypatch):
    def broken(settings):
        raise OSError(errno.EACCES, "Permission denied", str(settings.out))

    monkeypatch.setattr(flows.cli, "_prefect_environment", lambda state: None)
    monkeypatch.setattr(flows.loading, "start_fork_server", lambda: None)
    monkeypatch.setattr(flows.refresh, "refresh", broken)
    monkeypatch.setattr(gc, "freeze", lambda: None)
    with pytest.raises(PermissionError):
        flows.cli.main(["run", "--out", str(tmp_path / "out"), "--db", str(tmp_path / "state" / "g.duckdb")])
