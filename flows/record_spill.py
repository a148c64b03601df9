"""Records on disk: their identity columns between normalise and link, their facts until the rules are done.

A city's tests and vaccinations are tens of millions of rows; holding all their identity columns (names,
pinyin keys, IDs, phones, addresses) in memory from normalise to the end of linking is what ran a 5M-resident
refresh out of memory. Each kind is written to Parquet a part at a time as it is normalised, and linking reads
back the keys, then one batch of identity rows at a time; the records' facts go to Parquet beside them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl

from transforms.record_rows import KEYS

ROW = "_row"  # a record's row in its kind's file: how a batch is read back without a join over the file
ROW_GROUP = 100_000


def hard_link(source: Path, target: Path) -> None:
    """A part linked, not copied: written once, it costs its space once. A copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def link_parts(parts: list[Path], folder: Path, stem: str, start: int = 0) -> list[Path]:
    """parts linked into folder as stem-{start:05d}.parquet, ... (a spill's names, or a kept load's)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, part in enumerate(parts, start):
        target = folder / f"{stem}-{i:05d}.parquet"
        target.unlink(missing_ok=True)
        hard_link(part, target)
        out.append(target)
    return out


class Spill:
    """Parquet parts per kind of record in a folder of the run's own, removed with it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[str, list[Path]] = {}  # kind -> its parts, kinds in the order first written

    def write(self, kind: str, frame: pl.DataFrame) -> None:
        """Appends a part of kind's rows."""
        self.folder.mkdir(parents=True, exist_ok=True)
        parts = self.files.setdefault(kind, [])
        path = self.folder / f"{kind}-{len(parts):05d}.parquet"
        frame.write_parquet(path, compression="lz4", row_group_size=ROW_GROUP, statistics=True)
        parts.append(path)

    def scan(self, kind: str) -> pl.LazyFrame:
        return pl.scan_parquet(self.files[kind])

    def take(self, kind: str, parts: list[Path]) -> None:
        """Appends parts written before (flows.loaded_sources), hard-linked into the folder: this spill removes
        its links when the run ends, and the parts stay where they were kept."""
        mine = self.files.setdefault(kind, [])
        mine += link_parts(parts, self.folder, kind, len(mine))

    def drop(self, kind: str) -> None:
        """kind's parts removed, taken and written alike (a load that turned out not to hold)."""
        for path in self.files.pop(kind, []):
            path.unlink(missing_ok=True)

    def adopt(self, other: Spill) -> None:
        """Takes on what another process wrote into this folder (flows.loading)."""
        assert other.folder == self.folder, "a spill adopts only its own folder's parts"
        self.__dict__.update(other.__dict__)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class RecordSpill(Spill):
    def __init__(self, folder: Path):
        super().__init__(folder)
        self._rows: dict[str, int] = {}

    def write(self, kind: str, rows: pl.DataFrame) -> None:
        """Appends a part of kind's records: record_kind, record_id, identity columns and row_hash
        (transforms.record_rows.linking_rows). Rows are numbered across the parts, in the order written."""
        offset = self._rows.get(kind, 0)
        super().write(kind, rows.with_row_index(ROW, offset=offset))
        self._rows[kind] = offset + rows.height

    def take(self, kind: str, parts: list[Path], rows: int) -> None:
        """rows: how many records the parts hold, numbered from 0 in their _row (they must be kind's first)."""
        assert kind not in self.files, "kept parts are a kind's first"
        super().take(kind, parts)
        self._rows[kind] = rows

    def drop(self, kind: str) -> None:
        super().drop(kind)
        self._rows.pop(kind, None)

    def counts(self) -> dict[str, int]:
        """Records written of each kind, kinds in the order first written."""
        return {kind: self._rows[kind] for kind in self.files}

    def paths(self) -> list[Path]:
        """Every part of every kind, for DuckDB to read (record_kind, record_id, identity, row_hash, ROW)."""
        return [path for parts in self.files.values() for path in parts]

    def keys(self) -> pl.DataFrame:
        """Every record's key, row_hash and row, kind by kind in the order written."""
        frames = [self.scan(kind).select(*KEYS, "row_hash", ROW) for kind in self.files]
        if not frames:
            return pl.DataFrame(schema={"record_kind": pl.String, "record_id": pl.String,
                                        "row_hash": pl.UInt64, ROW: pl.UInt32})
        return pl.concat([f.collect() for f in frames], how="vertical_relaxed")

    def read(self, kind: str, rows: pl.Series) -> pl.DataFrame:
        """The identity rows of kind at these row numbers (sorted); only the row groups between the first
        and the last are read, and only the rows asked for are kept in memory."""
        scan = self.scan(kind)
        if rows.len() == 0:
            return scan.head(0).collect()
        lo, hi = int(rows[0]), int(rows[-1])
        if hi - lo + 1 == rows.len():  # a run of consecutive rows: every record of a full refresh
            return scan.slice(lo, rows.len()).collect()
        # Some records scattered over the file (an incremental run): filtered while reading, so a batch
        # never holds the whole file's rows between its first and last record.
        return scan.filter(pl.col(ROW).is_between(lo, hi) & pl.col(ROW).is_in(rows.implode())).collect()


class FactSpill(Spill):
    """The records' facts (transforms.record_rows.RECORD_FACTS) of each source on disk from normalise until the
    rules have read them. Linking never reads them, and the rules read a few columns each (the evidence reads
    record_id and the time of every record, the rest only for the few records shown on a list), so a city's
    facts (2 GiB at 5M residents) are never all in memory beside the roster and the decisions. The normalised
    roster waits here too, from the slice it was read in until link reads its identity columns and the rules
    the rest (at 5M it held 4 GiB in memory while the records were read)."""
