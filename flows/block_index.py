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
from concurrent.futures import Future, ThreadPoolExecutor
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
        """The kept index read whole (a batch's searches touch nearly every page of it: 0.2 M keys among 20 M,
        and mapped, not read, they waited for the disk page by page: 3.9 s at 20M), or None."""
        here = self.folder / self.key
        meta = read_meta(here)
        if meta is None or meta.get("key") != self.key or sorted(meta.get("indexes", [])) != sorted(ix.name for ix in INDEXES):
            return None
        try:
            return {name: SortedKeys(*(np.load(here / f"{name}.{part}.npy") for part in _PARTS))
                    for name in meta["indexes"]}
        except (OSError, ValueError):
            return None

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
    residents its keys meet. The index is loaded, or built and kept, at the first such batch; or read from
    the start of the link (prefetch), beside the exact stage, when its batches are known to be small."""

    def __init__(self, db: Database, roster: pl.DataFrame, kept: KeptBlockIndex, timings: dict, counts: dict,
                 prefetch: bool = False):
        self.db, self.roster, self.kept, self.timings, self.counts = db, roster, kept, timings, counts
        self.index: dict[str, SortedKeys] | None = None
        self._reading: Future | None = None
        if prefetch and kept.exists():
            reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="block-index")
            self._reading = reader.submit(kept.load)
            reader.shutdown(wait=False)

    def _index(self) -> dict[str, SortedKeys]:
        if self.index is None:
            t = time.perf_counter()
            self.index = self._reading.result() if self._reading is not None else self.kept.load()
            self._reading = None
            t = time_since(self.timings, "block_index_load", t)
            if self.index is None:
                self.kept.save(build_index(self.db))
                self.index = self.kept.load()
                time_since(self.timings, "block_index_build", t)
                if self.index is None:
                    raise RuntimeError(f"the blocking index just written to {self.kept.folder} could not be read back")
        return self.index

    def close(self) -> None:
        """Lets go of the index (after the link's last batch), waiting for a read that was not needed."""
        if self._reading is not None:
            self._reading.result()
        self.index = self._reading = None

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
