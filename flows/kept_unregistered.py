"""Where each test record with no decision is placed on the roster, kept from one refresh to the next, so a
two-hourly refresh places only the records that have newly no decision.

Placing a city's 4.7 M such records (at 20M residents) and sorting the 1.4 M placed took about 4 s a refresh,
and finding all their facts among those kept 2.8 s more (flows.lone_facts), for a set that two hours change by
a few tens of thousands. What is kept is the placed records in the list's order (transforms.unregistered
PLACED: names, phones, masked IDs and addresses, as the list shows them), under a key of the roster's places
(flows.roster_derived) and the code that places, and with the name of the file of the records with no
decision they were placed from (flows.kept_links). A refresh whose link carried that file on (LoneChange)
drops the records linked again now and places those that came; any other places every record again.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path

import polars as pl

from flows.code_fingerprint import code_fingerprint, with_transforms_they_import
from flows.kept_links import LoneTests
from flows.kept_meta import read_meta, write_meta
from flows.lone_facts import KeptLoneFacts
from flows.meter import time_since
from transforms.roster_gaps import RosterPlaces
from transforms.unregistered import in_list_order, place_unregistered


def places_code_files() -> list[Path]:
    """The code that places a record (and masks its ID); not this module, which only keeps what it made."""
    return with_transforms_they_import([Path(__file__).resolve().parents[1] / "transforms" / "unregistered.py"])


@cache
def _code() -> str:
    return code_fingerprint(places_code_files(), ("polars",))


def places_key(places_made_by: str) -> str:
    """The key of what is kept: the roster's places (their own key, flows.roster_derived) and the code."""
    return hashlib.sha256(f"{places_made_by};{_code()}".encode()).hexdigest()[:24]


class KeptUnregistered:
    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key
        self.figures: dict[str, int | bool] = {}  # after placed(): carried on or not, records kept and placed now

    def _kept(self, since: str) -> Path | None:
        """The kept file, if it was placed under this key from the records with no decision named since."""
        meta = read_meta(self.folder)
        if meta is None or meta.get("key") != self.key or meta.get("lone") != since:
            return None
        path = self.folder / meta["file"]
        return path if path.exists() else None

    def placed(self, lone: LoneTests, facts: KeptLoneFacts, places: Callable[[], RosterPlaces],
               timings: dict[str, float] | None = None) -> pl.DataFrame:
        """PLACED of every record in lone, in the list's order (in_list_order), and kept for the next refresh.
        timings: where the steps' seconds are added (unregistered_facts, _place, _keep)."""
        timings = {} if timings is None else timings
        change = lone.change
        kept = self._kept(change.since) if change is not None else None
        t = time.perf_counter()
        if kept is not None:
            gone = pl.concat([change.left, change.came]).lazy()
            still = pl.scan_parquet(kept).join(gone, on="record_id", how="anti", maintain_order="left").collect()
            found = facts.facts(lone.scan(), change.came)
            t = time_since(timings, "unregistered_facts", t)
            now = place_unregistered(found, places())
            out = in_list_order(still, now)
        else:
            still, found = None, facts.facts(lone.scan())
            t = time_since(timings, "unregistered_facts", t)
            now = place_unregistered(found, places())
            out = in_list_order(now)
        t = time_since(timings, "unregistered_place", t)
        self.figures = {"carried_on": kept is not None, "kept": 0 if still is None else still.height,
                        "placed_now": now.height}
        self._save(out, lone.path.name)
        time_since(timings, "unregistered_keep", t)
        return out

    def _save(self, placed: pl.DataFrame, lone_name: str) -> None:
        """A new file, then the meta naming it, then the old files gone: a refresh stopped midway leaves
        either the last file with its meta or the new one with its."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"placed-{uuid.uuid4().hex}.parquet"
        placed.write_parquet(self.folder / name, compression="lz4")
        write_meta(self.folder, {"key": self.key, "lone": lone_name, "file": name})
        for other in self.folder.glob("placed-*.parquet"):
            if other.name != name:
                other.unlink(missing_ok=True)
