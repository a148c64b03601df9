"""The roster's blocking index (transforms.block_index) kept beside the database, and a batch's blocking run
against the residents it finds.

Built by the first refresh that blocks a small batch against a roster (at 20M residents about 20 s), then
kept under the linking key, the index's code and the libraries that hash and search: each two-hour
refresh with the same roster maps it from disk. The files hold hashes and resident numbers, no names, IDs
or phones. The folder is replaced whole, so a refresh that dies while writing it leaves none, not a torn one.
"""

from __future__ import annotations

import hashlib
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
from flows.meter import add_time, time_since
from transforms.block_index import INDEXES, probes_sql, residents_met, sorted_index

_CODE = Path(__file__).resolve().parents[1] / "transforms" / "block_index.py"


def index_key(linking_key: str) -> str:
    """The linking key (roster, settings, linking code) with the index's code and the libraries it hashes,
    sorts and searches with."""
    code = code_fingerprint(with_transforms_they_import([_CODE]), ("duckdb", "polars", "numpy"))
    return hashlib.sha256(f"{linking_key}\0{code}".encode()).hexdigest()[:32]


class KeptBlockIndex:
    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key

    def load(self) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        """The kept index, mapped (only the pages a batch's searches touch are read), or None."""
        here = self.folder / self.key
        meta = read_meta(here)
        if meta is None or meta.get("key") != self.key or sorted(meta.get("indexes", [])) != sorted(ix.name for ix in INDEXES):
            return None
        try:
            return {name: (np.load(here / f"{name}.h.npy", mmap_mode="r"), np.load(here / f"{name}.v.npy", mmap_mode="r"))
                    for name in meta["indexes"]}
        except (OSError, ValueError):
            return None

    def save(self, index: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Written beside, then put in place of any index kept before (another roster's, or other code's)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        new = self.folder / f".new-{uuid.uuid4().hex}"
        new.mkdir()
        try:
            for name, (keys, values) in index.items():
                np.save(new / f"{name}.h.npy", keys)
                np.save(new / f"{name}.v.npy", values)
            write_meta(new, {"key": self.key, "indexes": list(index)})
            for old in self.folder.iterdir():
                if old != new:
                    shutil.rmtree(old, ignore_errors=True)
            new.rename(self.folder / self.key)
        finally:
            shutil.rmtree(new, ignore_errors=True)


def build_index(db: Database) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """From the roster and its key tables as exposed and made for this run's linking."""
    return {ix.name: sorted_index(db.fetch(ix.roster)) for ix in INDEXES}


class NarrowRoster:
    """The whole roster (exposed as `residents`) swapped, for one small batch's blocking joins, for the
    residents its keys meet. The index is loaded, or built and kept, at the first such batch."""

    def __init__(self, db: Database, roster: pl.DataFrame, kept: KeptBlockIndex, timings: dict, counts: dict):
        self.db, self.roster, self.kept, self.timings, self.counts = db, roster, kept, timings, counts
        self.index: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def _index(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self.index is None:
            t = time.perf_counter()
            self.index = self.kept.load()
            add_time(self.timings, "block_index_load", round(time.perf_counter() - t, 3))
            if self.index is None:
                t = time.perf_counter()
                self.kept.save(build_index(self.db))
                self.index = self.kept.load()
                add_time(self.timings, "block_index_build", round(time.perf_counter() - t, 3))
                if self.index is None:
                    raise RuntimeError(f"the blocking index just written to {self.kept.folder} could not be read back")
        return self.index

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
