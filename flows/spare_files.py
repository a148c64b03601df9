"""The last output's books and pages, emptied where they were and kept for the next output to be written into.

A refresh writes its outputs into a new folder and the output before it used to be deleted. On a file system
without a journal (as here) ext4 will not hand out an inode freed in the last minute or more (five, while its
inode table is not on disk) and steps over every such inode each time it makes a file: 30,000 files made just
after 30,000 were deleted took 9.0 s where they took 1.3–1.6 s otherwise (/tmp test, this machine). A refresh
that follows another within minutes (on demand, or a benchmark's) paid that for its 143,000 files at 20M.
So the files are not deleted: each one no other output holds is emptied (nothing of a resident stays in it)
where it is, and the emptied tree is kept beside the output as the pool. The next output is written into that
tree: a book or page written again at a refresh is mostly one that was written again at the refresh before
(at 20M residents every book is), so its writer finds an empty file at its place and writes into it; no inode
is freed or made, and nothing is renamed file by file. The pool used to be one flat folder, each file renamed
into it and out again: for 143,000 files emptying took 31.0 s against 24.3, writing into them 11.0 s against
6.0 (bench/file_making.py). The pool's files an output does not claim are kept loose (a flat folder) for the
files the tree lacks.

Emptying the replaced output (about 21 s for a city's 143,000 files, most of it the kernel freeing their blocks)
is done by a process of its own (Retirer), started once the new output is in place: the run ends when it has
published and recorded, not when the pool is ready; the next run waits for the pool only if it comes first.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from flows.beside_output import PREVIOUS, RETIRING, found_beside

# The output's folders whose files the publisher writes through CarriedOver, which says which it needs: only
# these are kept in the pool (the CSVs, the report and the data docs are few, and written by other writers).
POOLED = ("sheets", "community", "print")
_LISTING = ".spare.json"  # inside the pooled tree: its emptied files and folders, relative to it
_LOCK = "lock"  # in the pool's folder: the publisher and the retirer take turns
_RETIRED = "retired.json"  # in the pool's folder: how the last retiring went, for the next run to report


def _pool_root(out: Path) -> Path:
    return out.parent / f".{out.name}.spare"


@contextmanager
def pool_turn(out: Path) -> Iterator[float]:
    """The pool beside out held by this process (the lock is let go when its descriptor closes, or the process
    ends); yields the seconds waited for it, the time a retirer still at work held it."""
    root = _pool_root(out)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        t = time.perf_counter()
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield round(time.perf_counter() - t, 3)
    finally:
        os.close(fd)


class SpareFiles:
    """The pool beside an output (`.out.spare/tree`: an output two refreshes back, emptied). Used only inside
    pool_turn: by the run publishing an output, and by the process emptying the output it replaced."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.root = _pool_root(out)
        self.tree, self.loose_at = self.root / "tree", self.root / "loose"
        self.loose_at.mkdir(parents=True, exist_ok=True)
        for flat in ("files", "folders"):  # the flat pool of earlier versions
            shutil.rmtree(self.root / flat, ignore_errors=True)
        self.loose = [self.loose_at / name for name in os.listdir(self.loose_at)]
        self.staging: Path | None = None
        self.files: set[str] = set()  # emptied files in the staging folder, not yet claimed (relative POSIX)
        self.folders: set[str] = set()  # and folders
        self.files_taken = self.folders_taken = 0

    def take(self, staging: Path) -> None:
        """staging made: the pooled tree renamed to it when there is one (its files and folders then wait there
        to be claimed, and whatever is not claimed is removed by remove_unclaimed), else an empty folder."""
        self.staging = staging
        try:
            os.rename(self.tree, staging)
        except FileNotFoundError:
            staging.mkdir()
            return
        listing = staging / _LISTING
        try:
            held = json.loads(listing.read_text(encoding="utf-8"))
            self.files, self.folders = set(held["files"]), set(held["folders"])
        except (OSError, ValueError, KeyError, TypeError):  # not written whole: what the tree holds is read
            self.files, self.folders = _listed(staging)
        listing.unlink(missing_ok=True)
        for name in os.listdir(staging):  # nothing but the pooled folders is kept in a pooled tree
            if name not in POOLED:
                _remove(staging / name)
        self.files = {rel for rel in self.files if rel.split("/", 1)[0] in POOLED}
        self.folders = {rel for rel in self.folders if rel.split("/", 1)[0] in POOLED}

    def file(self, rel: str) -> bool:
        """The file at rel belongs to the output being written: True when an empty one from the pool is there
        (the tree's, or a loose one put there; its writer writes into it), False when
        the pool has none (its writer makes it)."""
        if rel in self.files:
            self.files.discard(rel)
        elif not _take(self.loose, f"{self.staging}/{rel}"):
            return False
        self.files_taken += 1
        return True

    def folder(self, rel: str) -> bool:
        """The folder at rel belongs to the output (its parent's turn came first): True when the pool's is there."""
        if rel in self.folders:
            self.folders.discard(rel)
            self.folders_taken += 1
            return True
        return False

    def in_the_way(self, rel: str) -> bool:
        """The file at rel is linked from the last output (a book carried over): True when the pool's empty
        file is there, which the caller removes for the link. (A loose one is not moved there to be removed.)"""
        if rel in self.files:
            self.files.discard(rel)
            return True
        return False

    def remove_unclaimed(self, keep: int) -> int:
        """The pool's files and folders the output did not claim taken out of the staging folder (a worker who
        left, a book carried over): the files kept loose, up to `keep` of them, the rest deleted. Returns how
        many."""
        staging = self.staging
        for i, rel in enumerate(self.files):
            if len(self.loose) < keep:
                spare = self.loose_at / f"{staging.name}-{i}"
                os.rename(staging / rel, spare)
                self.loose.append(spare)
            else:
                os.unlink(staging / rel)
        for rel in sorted(self.folders, key=lambda r: r.count("/"), reverse=True):
            os.rmdir(staging / rel)
        n = len(self.files)
        self.files, self.folders = set(), set()
        return n

    def retire_stale(self) -> int:
        """The replaced outputs beside out emptied into the pool: one being emptied when its retirer stopped,
        and (once out is there) one a run moved aside; out is newer than both. Returns how many."""
        out = self.out
        stale = found_beside(out, RETIRING)
        if out.exists():
            stale += found_beside(out, PREVIOUS)
        for folder in stale:
            self.retire(folder)
        return len(stale)

    def last_retirement(self) -> dict | None:
        """How the retirer after the last run went ({"seconds", "error"}), said once: the file is removed."""
        path = self.root / _RETIRED
        try:
            said = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        path.unlink(missing_ok=True)
        return said if isinstance(said, dict) else None

    def retire(self, tree: Path) -> None:
        """Everything under tree emptied: the files of the pooled folders in place (a file that another output
        holds too, a hard link of a book carried over, is only unlinked: that output's copy stays as it is), the
        rest removed; then tree becomes the pool, unless one is there already (a stopped run's), when it goes."""
        keep, drop, folders = [], [], []
        for where, subfolders, names in os.walk(tree):
            rel_where = os.path.relpath(where, tree).replace(os.sep, "/")
            pooled = rel_where != "." and rel_where.split("/", 1)[0] in POOLED
            if rel_where == ".":
                drop += [os.path.join(where, n) for n in subfolders if n not in POOLED]
                subfolders[:] = [n for n in subfolders if n in POOLED]
            linked = [n for n in subfolders if os.path.islink(os.path.join(where, n))]  # only unlinked
            drop += [os.path.join(where, n) for n in linked]
            subfolders[:] = [n for n in subfolders if n not in linked]
            folders += [_rel(rel_where, n) for n in subfolders]
            for name in names:
                path = os.path.join(where, name)
                info = os.lstat(path)
                if pooled and stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    keep.append((_rel(rel_where, name), path))
                else:
                    drop.append(path)
        # By two threads: the kernel freeing a file's blocks (about 120 us a file here) is most of retiring a
        # city's 143,000 files, and two threads do it 1.5 times as fast.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="empty") as emptier:
            for _ in emptier.map(_empty, [path for _, path in keep], chunksize=256):
                pass
            for _ in emptier.map(_remove, drop, chunksize=64):
                pass
        if self.tree.exists():
            shutil.rmtree(tree)
            return
        listing = {"files": [rel for rel, _ in keep], "folders": folders}
        (tree / _LISTING).write_text(json.dumps(listing, ensure_ascii=False), encoding="utf-8")
        os.rename(tree, self.tree)


class Retirer:
    """The output a run replaced (renamed .out.retiring-<run>) emptied into the pool by a process of its own,
    in a session of its own (a stop sent to the run's terminal does not reach it). It takes the pool's turn
    first; whatever it leaves (it failed to start, or was killed) the next run's publisher retires before it
    writes. How it went is kept in the pool (retired.json) for the next run's run.json."""

    def __init__(self, out: Path) -> None:
        root = Path(__file__).resolve().parents[1]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
        self.error: str | None = None
        try:
            self.process: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", "flows.spare_files", str(out)], cwd=root, env=env, start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            self.process, self.error = None, f"{type(exc).__name__}: {exc}"

    def wait(self) -> None:
        """Until the retirer has ended (tests, benchmarks); a run does not wait for it."""
        if self.process is not None:
            self.process.wait()


def retire_beside(out: Path) -> None:
    """The retirer's work: in the pool's turn, every replaced output beside out emptied into it, and how long
    that took (or why it failed) kept for the next run."""
    with pool_turn(out):
        spares = SpareFiles(out)
        t, said = time.perf_counter(), {}
        try:
            said["outputs"] = spares.retire_stale()
        except Exception as exc:  # noqa: BLE001  (kept for the next run, which retires what is left)
            said["error"] = f"{type(exc).__name__}: {exc}"
        said["seconds"] = round(time.perf_counter() - t, 3)
        if said.get("outputs") != 0:  # none: the next run's publisher came first and retired it itself
            (spares.root / _RETIRED).write_text(json.dumps(said), encoding="utf-8")


def wait_retired(out: Path, timeout: float = 900.0) -> None:
    """Until no replaced output is left beside out to be emptied: for tests and benchmarks that look at the pool
    or time the next run alone (a run itself never waits; its retirer may not yet have taken the pool's turn)."""
    deadline = time.monotonic() + timeout
    while True:
        with pool_turn(out):
            if not found_beside(out, RETIRING):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"a replaced output beside {out} was not emptied in {timeout:.0f} s")
        time.sleep(0.05)


def _take(pool: list[Path], target: str) -> bool:
    """The last of pool renamed to target; False if the pool had none (one taken out by hand is passed over)."""
    while pool:
        try:
            os.rename(pool.pop(), target)
        except FileNotFoundError:
            continue
        return True
    return False


def _rel(where: str, name: str) -> str:
    return name if where == "." else f"{where}/{name}"


def _listed(tree: Path) -> tuple[set[str], set[str]]:
    """The files and folders of a pooled tree whose listing was lost; a file not empty is no spare."""
    files, folders = set(), set()
    for where, subfolders, names in os.walk(tree):
        rel_where = os.path.relpath(where, tree).replace(os.sep, "/")
        folders |= {_rel(rel_where, n) for n in subfolders}
        for name in names:
            path = os.path.join(where, name)
            if os.path.getsize(path) == 0:
                files.add(_rel(rel_where, name))
            else:
                os.unlink(path)
    return files - {_LISTING}, folders


def _remove(path: str | Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _empty(path: str) -> None:
    # Through a descriptor, not os.truncate(path): ext4 marks a file cut to nothing by path to have its data
    # pushed to disk at its next close (auto_da_alloc), and that close would be the next output's writer's
    # (30,000 files: 2.2 s against 0.56).
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def write_into(path: Path | str, data: bytes) -> None:
    """data written as the whole of path: into the empty file a pool put there, or a new one. Not opened with
    O_TRUNC, which on ext4 would have the data pushed to disk at close, like a file cut by path (see _empty);
    a longer file that was there is cut after the write."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if os.fstat(fd).st_size > len(data):
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


if __name__ == "__main__":  # the Retirer's process: python -m flows.spare_files OUT
    retire_beside(Path(sys.argv[1]))
