"""The last output emptied where it was into a pool and written into again: nothing another output holds is
touched, nothing of a resident stays in the pool, what is written into a spare is exactly what was asked, and
the next output holds exactly the files it claimed."""

from __future__ import annotations

import os
import shutil
import time

from flows.spare_files import SpareFiles, write_into


def _tree(root, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_a_retired_output_is_emptied_in_place_and_its_tree_written_into_again(tmp_path):
    out, previous = tmp_path / "out", tmp_path / ".out.previous-1"
    _tree(previous, {"sheets/街道/社区/张三.xlsx": b"13800001111 " * 100, "print/街道/社区/张三.html": b"<p>x</p>",
                     "sheets/街道/社区/李四.xlsx": b"13900002222 " * 100, "print/街道/旧社区/王五.html": b"<p>y</p>",
                     "call_list.csv": b"id,phone\n1,13800001111\n", "data_docs/index.html": b"<p>docs</p>"})
    out.mkdir()
    os.link(previous / "print/街道/社区/张三.html", out / "kept.html")  # carried over into the published output
    inodes = {rel: (previous / rel).stat().st_ino for rel in ("sheets/街道/社区/张三.xlsx", "sheets/街道/社区/李四.xlsx")}
    spares = SpareFiles(out)
    spares.retire(previous)

    assert not previous.exists()
    assert (out / "kept.html").read_bytes() == b"<p>x</p>" and (out / "kept.html").stat().st_nlink == 1
    pooled = sorted(p for p in spares.tree.rglob("*") if p.is_file() and p.name != ".spare.json")
    # the files only this output held, in the pooled folders, emptied where they were: no ID, phone or name stays
    assert [p.relative_to(spares.tree).as_posix() for p in pooled] == [
        "print/街道/旧社区/王五.html", "sheets/街道/社区/张三.xlsx", "sheets/街道/社区/李四.xlsx"]
    assert all(p.stat().st_size == 0 for p in pooled)
    assert not (spares.tree / "call_list.csv").exists() and not (spares.tree / "data_docs").exists()

    # The next output is written into that tree: the same inodes at the same places, written whole; what it does
    # not claim is removed, what the pool did not have is made.
    later = SpareFiles(out)  # a new run finds the pool on disk
    staging = tmp_path / ".out.staging-2"
    later.take(staging)
    assert not spares.tree.exists()
    for rel in ("sheets", "sheets/街道", "sheets/街道/社区", "print", "print/街道", "print/街道/社区"):
        if not later.folder(rel):
            (staging / rel).mkdir()
    assert later.file("sheets/街道/社区/张三.xlsx") and not later.file("print/街道/社区/张三.html")
    write_into(staging / "sheets/街道/社区/张三.xlsx", b"new")
    write_into(staging / "print/街道/社区/张三.html", b"page")
    # carried over: the pool's file there is removed, and the last output's file linked there
    assert later.in_the_way("sheets/街道/社区/李四.xlsx") and not later.in_the_way("sheets/街道/社区/李四.xlsx")
    os.unlink(staging / "sheets/街道/社区/李四.xlsx")
    os.link(out / "kept.html", staging / "sheets/街道/社区/李四.xlsx")
    # the page of a community that left is kept loose (emptied), its folder removed
    assert later.remove_unclaimed(keep=10) == 1 and len(later.loose) == 1
    assert later.loose[0].stat().st_size == 0 and later.loose[0].parent == later.loose_at
    files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    assert files == ["print/街道/社区/张三.html", "sheets/街道/社区/张三.xlsx", "sheets/街道/社区/李四.xlsx"]
    assert not (staging / "print/街道/旧社区").exists()
    assert (staging / "sheets/街道/社区/张三.xlsx").read_bytes() == b"new"
    assert (staging / "sheets/街道/社区/张三.xlsx").stat().st_ino == inodes["sheets/街道/社区/张三.xlsx"]
    assert (later.files_taken, later.folders_taken) == (1, 6)


def test_files_the_next_output_does_not_claim_are_removed_and_a_lost_listing_is_read_from_the_tree(tmp_path):
    out, previous = tmp_path / "out", tmp_path / ".out.previous-2"
    _tree(previous, {f"print/g{i}/f{j}.html": b"data" for i in range(3) for j in range(4)})
    spares = SpareFiles(out)
    spares.retire(previous)
    (spares.tree / ".spare.json").unlink()  # a listing lost: the tree is read (its empty files are spares)
    staging = tmp_path / "staging"
    spares.take(staging)
    assert len(spares.files) == 12 and len(spares.folders) == 4
    for rel in ("print", "print/g0"):
        assert spares.folder(rel)
    assert spares.file("print/g0/f0.html") and not spares.file("print/g9/f0.html")
    assert spares.remove_unclaimed(keep=5) == 11  # five kept loose, six deleted
    assert sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")) == ["print", "print/g0", "print/g0/f0.html"]
    loose = {p.stat().st_ino for p in spares.loose_at.iterdir()}
    assert len(loose) == 5

    # A file the tree lacks is a loose one put at its place (the next run finds them on disk).
    later = SpareFiles(out)
    nxt = tmp_path / "next"
    later.take(nxt)
    (nxt / "print" / "new").mkdir(parents=True)
    assert later.file("print/new/a.html") and (nxt / "print/new/a.html").stat().st_ino in loose
    write_into(nxt / "print/new/a.html", b"page")
    assert (nxt / "print/new/a.html").read_bytes() == b"page" and len(list(later.loose_at.iterdir())) == 4


def test_written_into_a_longer_file_leaves_nothing_of_it(tmp_path):
    path = tmp_path / "book.xlsx"
    path.write_bytes(b"x" * 5000)
    write_into(path, b"short")
    assert path.read_bytes() == b"short"
    write_into(tmp_path / "new.xlsx", b"")
    assert (tmp_path / "new.xlsx").read_bytes() == b""


def test_a_swap_empties_the_replaced_output_and_a_stopped_runs_leftovers_are_emptied_next_time(tmp_path):
    from flows.publish import _swap, recover_interrupted_swap
    from flows.spare_files import Retirer, pool_turn, wait_retired

    out, staging = tmp_path / "out", tmp_path / ".out.staging-r2"
    _tree(out, {"sheets/a/张三.xlsx": b"old book", "call_list.csv": b"old list"})
    _tree(staging, {"sheets/a/张三.xlsx": b"new book", "call_list.csv": b"new list"})
    os.link(out / "call_list.csv", staging / "kept.csv")  # a file the new output carries over from the old
    retiring = _swap(staging, out, "r2")
    assert (out / "sheets/a/张三.xlsx").read_bytes() == b"new book" and retiring.name == ".out.retiring-r2"
    with pool_turn(out):  # a run still writing holds the pool: the retirer, a process of its own, waits for it
        retirer = Retirer(out)
        time.sleep(0.5)
        assert retirer.process.poll() is None and retiring.exists()
    retirer.wait()
    assert retirer.process.returncode == 0 and not retiring.exists()
    said = SpareFiles(out).last_retirement()  # for the next run's run.json, said once
    assert said["outputs"] == 1 and said["seconds"] >= 0 and "error" not in said
    assert SpareFiles(out).last_retirement() is None
    assert (out / "sheets/a/张三.xlsx").read_bytes() == b"new book" and (out / "kept.csv").read_bytes() == b"old list"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.spare", "out"]
    spares = SpareFiles(out)
    pooled = [p for p in spares.tree.rglob("*") if p.is_file() and p.name != ".spare.json"]
    assert [p.name for p in pooled] == ["张三.xlsx"] and pooled[0].stat().st_size == 0  # the old book, emptied

    (tmp_path / ".out.retiring-bad").write_bytes(b"")  # not a folder: a retirer that fails says why, and ends
    Retirer(out).wait()
    said = SpareFiles(out).last_retirement()
    assert said["error"].startswith("NotADirectoryError")
    (tmp_path / ".out.retiring-bad").unlink()
    wait_retired(out)  # nothing left to empty: returns at once

    # A run stopped while emptying the output it replaced, and one stopped after moving the last aside: both are
    # emptied by the next run, which never takes them back for the output; the pool holds one tree (the first).
    _tree(tmp_path / ".out.retiring-r3", {"sheets/b/李四.xlsx": b"half"})
    _tree(tmp_path / ".out.previous-r4", {"sheets/c/王五.xlsx": b"whole"})
    recover_interrupted_swap(out)
    later = SpareFiles(out)
    assert later.retire_stale() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.spare", "out"]
    pooled = [p for p in later.tree.rglob("*") if p.is_file() and p.name != ".spare.json"]
    assert [p.name for p in pooled] == ["张三.xlsx"] and pooled[0].stat().st_size == 0
    assert (out / "sheets/a/张三.xlsx").read_bytes() == b"new book"

    # With no output (a run stopped between moving the last aside and moving its own in), the last is put back.
    shutil.rmtree(out)
    _tree(tmp_path / ".out.previous-r5", {"call_list.csv": b"last good"})
    _tree(tmp_path / ".out.retiring-r4", {"call_list.csv": b"half emptied"})
    recover_interrupted_swap(out)
    SpareFiles(out).retire_stale()
    assert (out / "call_list.csv").read_bytes() == b"last good"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.spare", "out"]


def test_what_a_run_leaves_beside_its_output_is_found_whatever_the_output_is_called(tmp_path):
    """Names with glob's own characters (an output folder "输出[2]") are taken as they are."""
    from flows.beside_output import MATCHES, RETIRING, STAGING, beside, found_beside

    out = tmp_path / "输出[2]"
    made = [beside(out, RETIRING, "b"), beside(out, RETIRING, "a"), beside(out, STAGING, "a")]
    for folder in made:
        folder.mkdir()
    beside(out, MATCHES, "c", ".csv").write_text("x")
    (tmp_path / ".输出2.retiring-z").mkdir()  # another output's, which "[2]" as a pattern would take
    assert found_beside(out, RETIRING) == [made[1], made[0]]
    assert found_beside(out, MATCHES, ".csv") == [beside(out, MATCHES, "c", ".csv")]
    assert found_beside(out, MATCHES) == [beside(out, MATCHES, "c", ".csv")]
    assert found_beside(out, MATCHES, ".parquet") == []
