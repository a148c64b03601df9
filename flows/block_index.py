"""The roster's blocking index (transforms.block_index) kept beside the database, and a batch's blocking run
against the residents it finds.

Built by the first refresh that blocks a small batch against a roster (at 20M residents about 20 s), then
kept under the linking key, the index's code and the libraries that hash and search: each two-hour
refresh with the same roster maps it from disk. The files hold hashes and resident numbers, no names, IDs
or phones. The folder is replaced whole, so a refresh that dies while writing it leaves none, not a torn one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl

from flows.code_fingerprint import code_fingerprint, with_transforms_they_import
from flows.database import Database
from flows.kept_meta import read_meta, write_meta
from flows.meter import time_since
from transforms.block_index import (
    EXACT_PROBES,
    INDEXES,
    UNIQUE_COLUMNS,
    SortedKeys,
    probes_sql,
    residents_met,
    sorted_index,
    unique_residents_met,
)

_CODE = Path(__file__).resolve().parents[1] / "transforms" / "block_index.py"


def index_key(linking_key: str) -> str:
    """The linking key (roster, settings, linking code) with the index's code and the libraries it hashes,
    sorts and searches with."""
    code = code_fingerprint(with_transforms_they_import([_CODE]), ("duckdb", "polars", "numpy"))
    return hashlib.sha256(f"{linking_key}\0{code}".encode()).hexdigest()[:32]


_PARTS = ("keys", "values")


class KeptBlockIndex:
    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key

    def exists(self) -> bool:
        meta = read_meta(self.folder / self.key)
        return meta is not None and meta.get("key") == self.key

    def load(self) -> dict[str, SortedKeys] | None:
        """The kept index, mapped (a batch's searches touch nearly every page: 0.2 M keys among 20 M; read
        whole into the process instead, beside the link's first steps, the copy took a core from them: the
        households' fetch 3.1 s against 1.5), or None."""
        here = self.folder / self.key
        meta = read_meta(here)
        if meta is None or meta.get("key") != self.key or sorted(meta.get("indexes", [])) != sorted(ix.name for ix in INDEXES):
            return None
        try:
            return {name: SortedKeys(*(np.load(here / f"{name}.{part}.npy", mmap_mode="r") for part in _PARTS))
                    for name in meta["indexes"]}
        except (OSError, ValueError):
            return None

    def warm(self) -> None:
        """Asks the kernel to read the kept index's files into its cache ahead of the search, in the background."""
        if not hasattr(os, "posix_fadvise"):  # not on Windows or macOS: the first searches read it instead
            return
        here = self.folder / self.key
        for path in here.glob("*.npy"):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)

    def save(self, index: dict[str, SortedKeys]) -> None:
        """Written beside, then put in place of any index kept before (another roster's, or other code's)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        new = self.folder / f".new-{uuid.uuid4().hex}"
        new.mkdir()
        try:
            for name, sorted_keys in index.items():
                for part in _PARTS:
                    np.save(new / f"{name}.{part}.npy", getattr(sorted_keys, part))
            write_meta(new, {"key": self.key, "indexes": list(index)})
            for old in self.folder.iterdir():
                if old != new:
                    shutil.rmtree(old, ignore_errors=True)
            new.rename(self.folder / self.key)
        finally:
            shutil.rmtree(new, ignore_errors=True)


def build_index(db: Database) -> dict[str, SortedKeys]:
    """From the roster and its key tables as exposed and made for this run's linking."""
    return {ix.name: sorted_index(db.fetch(ix.roster)) for ix in INDEXES}


class NarrowRoster:
    """The whole roster (exposed as `residents`) swapped, for one small batch's blocking joins, for the
    residents its keys meet. The index is mapped, or built and kept, at the first such batch; its files are
    asked into the kernel's cache from the link's start (warm) when its batches are known to be small."""

    def __init__(self, db: Database, roster: pl.DataFrame, kept: KeptBlockIndex, timings: dict, counts: dict,
                 warm: bool = False):
        self.db, self.roster, self.kept, self.timings, self.counts = db, roster, kept, timings, counts
        self.index: dict[str, SortedKeys] | None = None
        if warm and kept.exists():
            kept.warm()

    def _index(self) -> dict[str, SortedKeys]:
        if self.index is None:
            t = time.perf_counter()
            self.index = self.kept.load()
            t = time_since(self.timings, "block_index_load", t)
            if self.index is None:
                self.kept.save(build_index(self.db))
                self.index = self.kept.load()
                time_since(self.timings, "block_index_build", t)
                if self.index is None:
                    raise RuntimeError(f"the blocking index just written to {self.kept.folder} could not be read back")
        return self.index

    def close(self) -> None:
        """Lets go of the index's maps (after the link's last batch)."""
        self.index = None

    @contextmanager
    def narrowed_exact(self):
        """Within: `unique_residents` (the kept table's view) is the unique IDs the batch's records have."""
        index = self._index()
        t = time.perf_counter()
        met = unique_residents_met(index, self.db.fetch(EXACT_PROBES))
        self.counts["narrowed_unique_ids"] = self.counts.get("narrowed_unique_ids", 0) + len(met)
        self.db.narrow_kept_roster_key("unique_residents", self.roster[pl.Series(met)].select(UNIQUE_COLUMNS))
        time_since(self.timings, "narrow_unique_ids", t)
        try:
            yield
        finally:
            self.db.restore_kept_roster_key("unique_residents")

    @contextmanager
    def narrowed(self):
        """Within: `residents` is the residents the batch's keys meet (after its pending_records and id_probes
        views are made); after, the whole roster again."""
        index = self._index()
        t = time.perf_counter()
        probes = self.db.fetch(probes_sql())
        t = time_since(self.timings, "narrow_probes", t)
        met = residents_met(index, probes)
        t = time_since(self.timings, "narrow_search", t)
        self.counts["narrowed_residents"] = self.counts.get("narrowed_residents", 0) + len(met)
        self.db.expose("residents", self.roster[pl.Series(met)])
        time_since(self.timings, "narrow_expose", t)
        try:
            yield
        finally:
            self.db.expose("residents", self.roster)
