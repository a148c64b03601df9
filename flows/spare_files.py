"""The last output's files and folders, emptied and kept for the next output to be written into.

A refresh writes its outputs into a new folder and the output before it used to be deleted. On a file system
without a journal (as here) ext4 will not hand out an inode freed in the last minute or more (five, while its
inode table is not on disk) and steps over every such inode each time it makes a file: 30,000 files made just
after 30,000 were deleted took 9.0 s where they took 1.3–1.6 s otherwise (/tmp test, this machine). A refresh
that follows another within minutes (on demand, or a benchmark's) paid that for its 143,000 files at 20M.
So the files are not deleted: each one no other output holds is emptied (nothing of a resident stays in it),
renamed into a pool beside the output, and renamed from there to where the next output needs a file, whose
writer then writes into it. No inode is freed and none is made; 30,000 files written so took 0.56 s.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


class SpareFiles:
    """The pool of empty files and folders beside an output (`.out.spare`). Only the process publishing the
    output uses it (runs are claimed one at a time), so it needs no lock; the writers' threads do not touch it."""

    def __init__(self, out: Path) -> None:
        self.root = out.parent / f".{out.name}.spare"
        self.files_at, self.folders_at = self.root / "files", self.root / "folders"
        for folder in (self.files_at, self.folders_at):
            folder.mkdir(parents=True, exist_ok=True)
        self.files = [self.files_at / name for name in os.listdir(self.files_at)]
        self.folders = [self.folders_at / name for name in os.listdir(self.folders_at)]
        self.files_taken = self.folders_taken = 0

    def file(self, target: Path | str) -> None:
        """An empty file put at target (which is not there yet), if the pool has one; else its writer makes it."""
        if _take(self.files, target):
            self.files_taken += 1

    def folder(self, target: Path | str) -> None:
        """target made as a folder (its parent is there), from the pool if it has one."""
        if _take(self.folders, target):
            self.folders_taken += 1
        else:
            os.makedirs(target, exist_ok=True)

    def retire(self, tree: Path, tag: str, files: int | None = None, folders: int | None = None) -> None:
        """Everything under tree emptied into the pool, then tree itself; a file that another output holds too
        (a hard link: a book carried over) is only unlinked, which leaves that output's copy as it is.
        The pool is kept to as many files and folders as an output has (files, folders); any more are deleted."""
        n = 0
        # Emptied by two threads, a folder's files at a time, each renamed once it is empty: the kernel freeing a
        # file's blocks (about 120 us a file here) is most of retiring a city's 143,000 files (33 s at 20M), and
        # two threads do it 1.5 times as fast.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="empty") as emptier:
            for where, subfolders, names in os.walk(tree, topdown=False):
                spares = []
                for name in names:
                    path = os.path.join(where, name)
                    info = os.lstat(path)
                    if (stat.S_ISREG(info.st_mode) and info.st_nlink == 1
                            and (files is None or len(self.files) + len(spares) < files)):
                        spares.append(path)
                    else:
                        os.unlink(path)
                for path, _ in zip(spares, emptier.map(_empty, spares), strict=True):
                    spare = self.files_at / f"{tag}-{n}"
                    os.rename(path, spare)
                    self.files.append(spare)
                    n += 1
                for name in subfolders:
                    self._retire_folder(Path(where) / name, f"{tag}-{n}", folders)
                    n += 1
        self._retire_folder(tree, f"{tag}-{n}", folders)

    def _retire_folder(self, folder: Path, name: str, limit: int | None) -> None:
        """folder, emptied already (the walk is bottom-up), into the pool; a link to a folder only unlinked."""
        if folder.is_symlink():
            folder.unlink()
            return
        if limit is not None and len(self.folders) >= limit:
            folder.rmdir()
            return
        spare = self.folders_at / name
        os.rename(folder, spare)
        self.folders.append(spare)


def _take(pool: list[Path], target: Path | str) -> bool:
    """The last of pool renamed to target; False if the pool had none (one taken out by hand is passed over)."""
    while pool:
        try:
            os.rename(pool.pop(), target)
        except FileNotFoundError:
            continue
        return True
    return False


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
