"""The last refresh's normalised identity columns, per source, in the state folder.

Normalising (pinyin keys, ID check digits, address canon) is a fifth of a refresh, and a two-hourly refresh
sees the same roster and the same earlier records again. What a row normalises to depends on its input
cells and on the normaliser code alone, so each source keeps a table of input key -> normalised columns,
and the next refresh normalises only inputs it has not seen. The folder name carries a fingerprint of the
normaliser code and of the library versions it depends on: changed code starts from scratch. The table
holds names, IDs and phones, as the database beside it does, and nothing outside the state folder.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import polars as pl

from flows.code_fingerprint import code_fingerprint, with_transforms_they_import
from flows.record_spill import hard_link
from transforms import normalise
from transforms.normalise import INPUT_KEY


@cache
def normaliser_fingerprint() -> str:
    seeds = [Path(normalise.__file__)]  # and what it imports: the name, address, ID and phone normalisers
    return code_fingerprint(with_transforms_they_import(seeds), ("polars", "pypinyin"))  # hash_rows, readings


class KeptTable:
    """One source's table from the last refresh, with an index of the part each input is in.

    A refresh normalises its rows a part at a time, and exports only grow, so this refresh's part k finds
    nearly all its inputs in the last refresh's part k: reading only the parts that hold a part's inputs,
    not the whole table for every part. That bounds what each part reads from disk when the table is not in
    the page cache; when it is, it saves little (5M tests, 4 parts: 41.3 s against 41.7-42.2 s). The index
    holds the first half of each key (12 bytes an input): two inputs sharing it only cost a part read."""

    def __init__(self, files: list[Path]):
        self.files = files
        part = lambda i: pl.lit(i, pl.UInt32).alias("part")  # noqa: E731
        self.index = pl.concat([pl.scan_parquet(f).select(INPUT_KEY[0], part(i)) for i, f in enumerate(files)]).collect()

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.files)

    def holding(self, keyed: pl.DataFrame) -> pl.LazyFrame | None:
        """The rows of the parts holding any of these keys' inputs whose key's first half is one of theirs (None:
        no part holds any). A filter on the scan, not a join after it: the key column is decoded first and the
        normalised columns only for the rows it keeps (a roster's 5 % of keys: 0.28 -> 0.14 s at 1M). Two halves
        of a key are still to be matched by the caller."""
        first = keyed.select(INPUT_KEY[0]).unique()
        parts = self.index.join(first, on=INPUT_KEY[0], how="semi")["part"].unique()
        if not parts.len():
            return None
        return pl.scan_parquet([self.files[i] for i in parts.sort()]).filter(
            pl.col(INPUT_KEY[0]).is_in(first[INPUT_KEY[0]].implode()))


class NormalisedStore:
    """Per source, a folder of Parquet parts; a refresh writes a new folder and swaps it in whole."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, source: str) -> Path:
        return self.folder / f"{source}-{normaliser_fingerprint()}"

    def kept(self, source: str) -> KeptTable | None:
        path = self._path(source)
        return KeptTable(sorted(path.glob("*.parquet"))) if path.is_dir() else None

    @contextmanager
    def writer(self, source: str, *, carry: bool = False) -> Iterator[Callable[[pl.DataFrame], None]]:
        """Yields a function writing one part of the source's new table. The new table replaces the old only
        when the block ends without an error (never a half-written table in its place); tables kept under
        another fingerprint are dropped then. carry: the new table begins with the old one's parts (a file
        that grew at its end: its earlier rows' inputs are all there)."""
        path = self._path(source)
        partial = path.with_name(f".{path.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        parts = itertools.count()
        if carry and path.is_dir():
            for old in sorted(path.glob("*.parquet")):
                hard_link(old, partial / f"part-{next(parts):05d}.parquet")

        def write(table: pl.DataFrame) -> None:
            # No column statistics: the table is read by its own index of parts and filtered on random hashes,
            # which no min and max can narrow, and working them out was a seventh of writing it.
            table.write_parquet(partial / f"part-{next(parts):05d}.parquet", compression="lz4", statistics=False)

        try:
            yield write
            if next(parts) == 0:
                raise ValueError(f"no part written for {source}")
            old = path.with_name(f".{path.name}.old")
            if path.exists():
                path.rename(old)
            partial.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        for stale in self.folder.glob(f"{source}-*"):
            if stale != path:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
