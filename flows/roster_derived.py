"""What a refresh finds in the roster alone, kept in the state folder for as long as the roster is the same.

A two-hourly refresh mostly keeps its roster: flows.loaded_sources takes its parts back hard-linked, so they
are the very files of the last load. The duplicate registrations and each building's grid are then what
they were two hours before; at 20M residents finding them again took about 15 s a refresh. So is who answers
for each grid (the books, the community books and the report read it): a unique of four columns of the
roster, 0.4-0.5 s at 20M alone (3.8 s in a refresh, beside the kept rulings being written).
They are kept under a key made of the roster parts' identity on disk (device, inode, size, modification
time: a roster read again is written to new files) and the fingerprint of the code that finds them.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path

import polars as pl

from flows.code_fingerprint import code_fingerprint, with_transforms_they_import
from flows.kept_links import part_identity
from transforms.coverage import GRID
from transforms.roster_gaps import RosterPlaces, duplicate_registrations, roster_places


@cache
def _code() -> str:
    root = Path(__file__).resolve().parents[1]
    return code_fingerprint(with_transforms_they_import([root / "transforms" / "roster_gaps.py", Path(__file__)]),
                            ("polars",))


def roster_key(parts: list[Path]) -> str:
    h = hashlib.sha256(_code().encode())
    for identity in part_identity(parts):
        h.update(f"{identity};".encode())
    return h.hexdigest()[:24]


class RosterDerived:
    """The roster's duplicate registrations, places and grid workers: kept ones when the key is the last
    one's, else found from `roster` (a scan of its parts) and kept, the last key's dropped. reused says which
    it was."""

    def __init__(self, folder: Path, parts: list[Path], roster: pl.LazyFrame) -> None:
        self.folder, self.roster = folder, roster
        self.key = roster_key(parts)
        self.here = folder / self.key
        self.reused = self.here.is_dir()

    def _kept(self, names: tuple[str, ...], make: Callable[[], tuple[pl.DataFrame, ...]]) -> tuple[pl.DataFrame, ...]:
        """The frames of these names as kept, or made together by make and kept."""
        paths = [self.here / f"{name}.parquet" for name in names]
        if all(path.exists() for path in paths):
            return tuple(pl.read_parquet(path) for path in paths)
        frames = make()
        self.here.mkdir(parents=True, exist_ok=True)
        for frame, path in zip(frames, paths, strict=True):
            fresh = path.with_suffix(".new")
            frame.write_parquet(fresh)
            fresh.replace(path)  # whole or not at all: a refresh stopped mid-write leaves nothing to be taken
        for other in self.folder.iterdir():
            if other != self.here:
                shutil.rmtree(other, ignore_errors=True)
        return frames

    def duplicates(self) -> pl.DataFrame:
        return self._kept(("duplicates",), lambda: (duplicate_registrations(self.roster),))[0]

    def grid_workers(self) -> pl.DataFrame:
        """street, community, grid_id, grid_worker: each grid and its worker as the roster assigns them."""
        return self._kept(("grid_workers",), lambda: (
            self.roster.lazy().select(*GRID, "grid_worker").unique().collect(),))[0]

    def places(self) -> RosterPlaces:
        def make() -> tuple[pl.DataFrame, pl.DataFrame]:
            places = roster_places(self.roster)
            return places.buildings, places.communities

        return RosterPlaces(*self._kept(("buildings", "communities"), make))
