"""What the last refresh made of each source, kept in the state folder, so an unchanged source is not read again.

A two-hourly refresh mostly sees new test records: the roster and the vaccination export are the files of
two hours before. Reading, parsing and normalising them again was two thirds of an incremental refresh at 20M
residents (about 270 of 830 s) to make the same Parquet parts. So when a source is taken in whole, its parts
(the records' linking rows and the facts the rules read) are hard-linked here beside its quarantined rows,
its figures and the sample its expectation suite ran on; the next refresh takes them back when:

- the source is the same: the same file by the file system's record (flows.sources.FileSource) or the same
  stored inbox files (StoredSource);
- the code that reads, parses and normalises it is the same (a fingerprint of its modules and of the library
  versions they depend on), and so is the sample size of the suites;
- the new round's end parses the rows the same (transforms.parsing.AsOfWindow).

The suite is run again on the kept sample (the round's end is part of it), and the row count checked against
the last load again, so a reused source is refused exactly as a read one would be.

A source that only grew at its end (the test system's export of the day, taken again: the same bytes and
more, flows.readers.grown_table; or the inbox's stored exports and more of them, flows.sources.StoredTable)
is read on from where the last load ended: its parts are taken as above,
and the duplicate check, the suite's sample, the quarantine and the figures go on from what was kept of
them (the unique keys of the rows parsed, the sample as drawn), so it ends as reading it whole would. One entry per source: the
last load; a source read again replaces it, and it is dropped before a source is read, so an entry never
outlives the load it came from. The parts hold names, IDs and phones, as the database beside them does.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import polars as pl

from flows.code_fingerprint import code_fingerprint, with_transforms_they_import
from flows.record_spill import link_parts
from transforms.parsing import AsOfWindow

# Everything a source's parts depend on but the file: the readers, the loader, the spills' layout, and the
# transforms they import (parsing, the contract, the normalisers, the evidence columns), found from the source.
_LOADING_MODULES = ("flows/readers.py", "flows/transcode.py", "flows/uncached_read.py", "flows/sources.py",
                    "flows/record_spill.py")
_LIBRARIES = ("polars", "pypinyin")
MANIFEST = "manifest.json"
FACTS = "facts"  # a kept load's facts parts are FACTS-00000.parquet, ... (flows.state_prefetch finds them so)


@cache
def loading_fingerprint() -> str:
    root = Path(__file__).resolve().parents[1]
    return code_fingerprint(with_transforms_they_import([root / m for m in _LOADING_MODULES]), _LIBRARIES)


@dataclass
class Kept:
    """One source's last load, as found: its parts (records: linking rows of kind, with `records` rows; facts),
    its quarantined rows and suite sample on disk, and `summary`: what SourceLoader.load returned of it
    (rows_used, notes, flags, the table's facts) and the sample's seen count."""

    folder: Path
    kind: str | None
    records: int
    record_parts: list[Path]
    fact_parts: list[Path]
    summary: dict
    window: AsOfWindow
    end: dict | None  # where its read ended, as its table said (Table.end): what a grown source goes on from
    parser_key_parts: list[Path]  # transforms.parsing.first_keys of its rows, for a file that grows

    def quarantine(self) -> pl.DataFrame:
        return pl.read_parquet(self.folder / "quarantine.parquet")

    def sample(self) -> pl.DataFrame:
        return pl.read_parquet(self.folder / "sample.parquet")

    def parser_keys(self) -> pl.DataFrame | None:
        return pl.read_parquet(self.parser_key_parts) if self.parser_key_parts else None


class LoadedSources:
    """A folder per source: its parts, quarantine.parquet, sample.parquet and the manifest (written last)."""

    def __init__(self, folder: Path):
        self.folder = folder

    @staticmethod
    def key(identity: dict, sample_rows: int) -> dict:
        return {"source": identity, "code": loading_fingerprint(), "sample_rows": sample_rows}

    def find(self, name: str, key: dict, as_of: datetime, *, grown: bool = False) -> Kept | None:
        """The kept load of this source if it holds for key and this round's end, else None. grown: if it
        holds for all of key but the source's identity, and is of a CSV export that ended a row (the caller
        then checks that the file begins with its bytes)."""
        folder = self.folder / name
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        window = AsOfWindow(*(datetime.fromisoformat(t) if t else None for t in manifest["as_of_window"]))
        same = json.loads(json.dumps(key))
        if grown:
            same["source"] = manifest["key"]["source"]
            if not (manifest.get("end") or {}).get("closed"):
                return None
        if manifest["key"] != same or not window.holds(as_of):
            return None
        kept = Kept(folder, manifest["kind"], manifest["records"],
                    [folder / p for p in manifest["record_parts"]], [folder / p for p in manifest["fact_parts"]],
                    manifest["summary"], window, manifest.get("end"),
                    [folder / p for p in manifest.get("parser_key_parts", [])])
        if not all(p.exists() for p in [*kept.record_parts, *kept.fact_parts, *kept.parser_key_parts]):
            return None
        return kept

    def forget(self, name: str) -> None:
        shutil.rmtree(self.folder / name, ignore_errors=True)

    def keep(self, name: str, key: dict, window: AsOfWindow, *, kind: str | None, records: int,
             record_parts: list[Path], fact_parts: list[Path], quarantine: pl.DataFrame, sample: pl.DataFrame,
             summary: dict, end: dict | None = None, parser_key_parts: list[Path] = (),
             parser_keys: pl.DataFrame | None = None) -> None:
        """Stores a load; written beside and swapped in whole, so a crash leaves the old entry or none. The
        parser's keys (kept only with an end a later source can grow from) are the parts of the load this
        one grew from and the keys of the rows parsed now."""
        self.forget(name)
        partial = self.folder / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        records_in = link_parts(record_parts, partial, "records")
        facts_in = link_parts(fact_parts, partial, FACTS)
        keys_in = []
        if end and end.get("closed"):
            keys_in = link_parts(list(parser_key_parts), partial, "keys")
            if parser_keys is not None:
                keys_in.append(partial / f"keys-{len(keys_in):05d}.parquet")
                parser_keys.write_parquet(keys_in[-1], compression="lz4")
        quarantine.write_parquet(partial / "quarantine.parquet", compression="lz4")
        sample.write_parquet(partial / "sample.parquet", compression="lz4")
        manifest = {
            "key": key, "kind": kind, "records": records,
            "record_parts": [p.name for p in records_in], "fact_parts": [p.name for p in facts_in],
            "as_of_window": [t.isoformat() if t else None for t in asdict(window).values()],
            "summary": summary, "end": end, "parser_key_parts": [p.name for p in keys_in],
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, default=str), encoding="utf-8")
        partial.rename(self.folder / name)
