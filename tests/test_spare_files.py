"""The last output emptied into a pool and written into again: nothing another output holds is touched, nothing
of a resident stays in the pool, and what is written into a spare is exactly what was asked."""

from __future__ import annotations

import os
import shutil

from flows.spare_files import SpareFiles, write_into


def _tree(root, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_a_retired_output_is_emptied_into_the_pool_and_a_file_another_output_holds_is_left_whole(tmp_path):
    out, previous = tmp_path / "out", tmp_path / ".out.previous-1"
    _tree(previous, {"sheets/街道/社区/张三.xlsx": b"13800001111 " * 100, "print/街道/社区/张三.html": b"<p>x</p>",
                     "call_list.csv": b"id,phone\n1,13800001111\n"})
    out.mkdir()
    os.link(previous / "print/街道/社区/张三.html", out / "kept.html")  # carried over into the published output
    spares = SpareFiles(out)
    spares.retire(previous, "1")

    assert not previous.exists()
    assert (out / "kept.html").read_bytes() == b"<p>x</p>" and (out / "kept.html").stat().st_nlink == 1
    pooled = sorted(spares.files_at.iterdir())
    assert len(pooled) == 2 == len(spares.files)  # the two files only this output held; the shared one unlinked
    assert all(p.stat().st_size == 0 for p in pooled)  # no ID, phone or name stays behind
    assert not any(p.name in {"张三.xlsx", "call_list.csv"} for p in pooled)
    assert len(list(spares.folders_at.iterdir())) == 7 == len(spares.folders)  # sheets, print, streets, communities, root
    assert all(not any(p.iterdir()) for p in spares.folders_at.iterdir())

    # The next output takes them: the same inodes, renamed into place, written whole.
    inodes = {p.stat().st_ino for p in pooled}
    staging = tmp_path / "staging"
    staging.mkdir()
    later = SpareFiles(out)  # a new run finds the pool on disk
    assert len(later.files) == 2 and len(later.folders) == 7
    later.folder(staging / "a")
    later.file(staging / "a" / "b.xlsx")
    write_into(staging / "a" / "b.xlsx", b"new")
    later.file(staging / "a" / "c.html")
    later.file(staging / "a" / "d.html")  # the pool is empty now: the writer makes this one
    write_into(staging / "a" / "c.html", b"page")
    write_into(staging / "a" / "d.html", b"page two")
    assert (staging / "a" / "b.xlsx").read_bytes() == b"new" and (staging / "a" / "c.html").read_bytes() == b"page"
    assert (staging / "a" / "d.html").read_bytes() == b"page two"
    assert {(staging / "a" / n).stat().st_ino for n in ("b.xlsx", "c.html")} == inodes
    assert (later.files_taken, later.folders_taken) == (2, 1) and not list(later.files_at.iterdir())


def test_the_pool_is_kept_to_an_outputs_size(tmp_path):
    out, previous = tmp_path / "out", tmp_path / ".out.previous-2"
    _tree(previous, {f"g{i}/f{j}.xlsx": b"data" for i in range(3) for j in range(4)})
    spares = SpareFiles(out)
    spares.retire(previous, "2", files=5, folders=2)
    assert len(list(spares.files_at.iterdir())) == 5 and len(list(spares.folders_at.iterdir())) == 2
    assert not previous.exists()


def test_written_into_a_longer_file_leaves_nothing_of_it(tmp_path):
    path = tmp_path / "book.xlsx"
    path.write_bytes(b"x" * 5000)
    write_into(path, b"short")
    assert path.read_bytes() == b"short"
    write_into(tmp_path / "new.xlsx", b"")
    assert (tmp_path / "new.xlsx").read_bytes() == b""


def test_a_swap_empties_the_replaced_output_and_a_stopped_runs_leftovers_are_emptied_next_time(tmp_path):
    from flows.publish import Retirement, _swap, recover_interrupted_swap, retire_stale

    out, staging = tmp_path / "out", tmp_path / ".out.staging-r2"
    _tree(out, {"sheets/a/张三.xlsx": b"old book", "call_list.csv": b"old list"})
    _tree(staging, {"sheets/a/张三.xlsx": b"new book", "call_list.csv": b"new list"})
    os.link(out / "call_list.csv", staging / "kept.csv")  # a file the new output carries over from the old
    spares = SpareFiles(out)
    retiring = _swap(staging, out, "r2")
    assert (out / "sheets/a/张三.xlsx").read_bytes() == b"new book" and retiring.name == ".out.retiring-r2"
    retirement = Retirement(spares, retiring, "r2", files=10, folders=10)  # emptied by a thread of its own
    retirement.wait()
    assert retirement.error is None and not retiring.exists()
    failed = Retirement(spares, tmp_path / ".out.retiring-gone", "r9", files=10, folders=10)
    failed.wait()  # a retirement that fails says so; it raises nothing into a run that has published
    assert failed.error is not None and failed.error.startswith("FileNotFoundError")
    assert (out / "sheets/a/张三.xlsx").read_bytes() == b"new book" and (out / "kept.csv").read_bytes() == b"old list"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.spare", "out"]
    assert len(spares.files) == 1 and all(p.stat().st_size == 0 for p in spares.files)  # the old book, emptied

    # A run stopped while emptying the output it replaced, and one stopped after moving the last aside: both are
    # emptied by the next run, which never takes them back for the output.
    _tree(tmp_path / ".out.retiring-r3", {"sheets/b/李四.xlsx": b"half"})
    _tree(tmp_path / ".out.previous-r4", {"sheets/c/王五.xlsx": b"whole"})
    recover_interrupted_swap(out)
    later = SpareFiles(out)
    retire_stale(out, later)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.spare", "out"]
    assert len(later.files) == 3 and all(p.stat().st_size == 0 for p in later.files)
    assert (out / "sheets/a/张三.xlsx").read_bytes() == b"new book"

    # With no output (a run stopped between moving the last aside and moving its own in), the last is put back.
    shutil.rmtree(out)
    _tree(tmp_path / ".out.previous-r5", {"call_list.csv": b"last good"})
    _tree(tmp_path / ".out.retiring-r4", {"call_list.csv": b"half emptied"})
    recover_interrupted_swap(out)
    retire_stale(out, SpareFiles(out))
    assert (out / "call_list.csv").read_bytes() == b"last good"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.spare", "out"]
