"""Making an output's files: on a quiet disk, right after deleting as many, and written into the emptied files
of the output before, emptied where they were (flows.spare_files), as a refresh now does.

    python bench/file_making.py --files 30000 --folders 3000 --work /tmp/fm --settle 330

ext4 without a journal (this machine's) will not reuse an inode freed in the last minute or more (five while
its inode table is not on disk), and steps over every such inode to make a file. --settle waits that long
first, so that the quiet case is quiet (the inodes of earlier runs settled). Prints one JSON line per case:
seconds and the CPU seconds the kernel spent for the process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.spare_files import SpareFiles, write_into  # noqa: E402

BODY = b"x" * 16_000  # about a worker's book


def make(tree: Path, folders: int, per: int, spares: SpareFiles | None = None) -> dict:
    """folders x per files under tree/print (a pooled folder, as an output's pages are); with spares, into the
    pool's emptied tree as the publisher claims it."""
    t, kernel = time.perf_counter(), os.times().system
    if spares is None:
        tree.mkdir(parents=True)
    else:
        spares.take(tree)
    for rel in ["print", *(f"print/community-{d}" for d in range(folders))]:
        if spares is None or not spares.folder(rel):
            (tree / rel).mkdir(exist_ok=True)
    for d in range(folders):
        for f in range(per):
            rel = f"print/community-{d}/worker-{f}.html"
            if spares is not None:
                spares.file(rel)
            write_into(tree / rel, BODY)
    return {"seconds": round(time.perf_counter() - t, 3), "kernel_cpu": round(os.times().system - kernel, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=30_000)
    ap.add_argument("--folders", type=int, default=3_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/gridsweep-file-making"))
    ap.add_argument("--settle", type=int, default=330, help="seconds to wait before the quiet case")
    args = ap.parse_args()
    per = max(1, args.files // args.folders)
    work = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    time.sleep(args.settle)
    print(json.dumps({"case": "quiet disk", **make(work / "a", args.folders, per)}), flush=True)
    t = time.perf_counter()
    shutil.rmtree(work / "a")
    print(json.dumps({"case": "delete them", "seconds": round(time.perf_counter() - t, 3)}), flush=True)
    print(json.dumps({"case": "made right after deleting as many", **make(work / "b", args.folders, per)}), flush=True)
    spares = SpareFiles(work / "out")
    t = time.perf_counter()
    spares.retire(work / "b")
    print(json.dumps({"case": "empty them into the pool", "seconds": round(time.perf_counter() - t, 3)}), flush=True)
    print(json.dumps({"case": "written into the emptied files", **make(work / "c", args.folders, per, spares),
                      "taken_from_pool": spares.files_taken}), flush=True)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
