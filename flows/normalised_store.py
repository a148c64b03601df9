"""The last refresh's normalised identity columns, per source, in the state folder.

Normalising (pinyin keys, ID check digits, address canon) is a fifth of a refresh, and a two-hourly refresh
sees the same roster and the same earlier records again. What a row normalises to depends on its input
cells and on the normaliser code alone, so each source keeps a table of input key -> normalised columns,
and the next refresh normalises only inputs it has not seen. The file name carries a fingerprint of the
normaliser code and of the library versions it depends on: changed code starts from scratch. The table
holds names, IDs and phones, as the database beside it does, and nothing outside the state folder.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from importlib.metadata import version
from pathlib import Path

import polars as pl

from transforms import addresses, idcard, names, normalise, phones


@cache
def normaliser_fingerprint() -> str:
    h = hashlib.sha256()
    for module in (normalise, names, addresses, idcard, phones):
        h.update(Path(module.__file__).read_bytes())
    for package in ("polars", "pypinyin"):  # hash_rows and the readings of characters
        h.update(f"{package}={version(package)}".encode())
    return h.hexdigest()[:16]


class NormalisedStore:
    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, source: str) -> Path:
        return self.folder / f"{source}-{normaliser_fingerprint()}.parquet"

    def scan(self, source: str) -> pl.LazyFrame | None:
        path = self._path(source)
        return pl.scan_parquet(path) if path.exists() else None

    def rows(self, source: str) -> int:
        path = self._path(source)
        return pl.scan_parquet(path).select(pl.len()).collect().item() if path.exists() else 0

    def save(self, source: str, table: pl.DataFrame) -> None:
        """Replaces the source's table whole (never a half-written file in its place) and drops tables
        kept under another fingerprint."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(source)
        partial = path.with_name(f".{path.name}.partial")
        table.write_parquet(partial, compression="lz4")
        os.replace(partial, path)
        for stale in self.folder.glob(f"{source}-*.parquet"):
            if stale != path:
                stale.unlink(missing_ok=True)
