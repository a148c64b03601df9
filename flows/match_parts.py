"""Every decision of a refresh published as CSV files of at most a million rows each (matches/), so that a
refresh writes only the files of the decisions it added, and each file opens in Excel and WPS.

Written as one matches.csv, a 20M city's decisions (119 M rows, 13 GB by the 157th two-hour batch) were
written again at every refresh: 111-120 s of a process's time at the lowest priority, of which publish
still waited 20-35 s, and 13 GB more of disk beside the last output. No spreadsheet opens such a file
(Excel and WPS show at most 1,048,576 rows). The decisions are kept between refreshes as a few sorted files
(flows.kept_links): the city's, then those each refresh since added. Each of those files is published as
parts of PART_ROWS rows in its order; a part is named by the file's place in the copy and its own, and its
digest names the copy's file (which never changes under its name), so a part the last output holds is
hard-linked from it as an unchanged book is (flows.publish.CarriedOver), and the others are written by a
process of their own from the end of the link on (flows.csv_aside).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from flows.csv_aside import AsideCsv, start_aside, write_csv

if TYPE_CHECKING:
    from flows.publish import CarriedOver

FOLDER = "matches"
PART_ROWS = 1_000_000  # under Excel's and WPS's 1,048,576 rows a sheet, with room for the header


@dataclass(frozen=True)
class Part:
    rel: str  # matches/<file's place>-<part's place>.csv
    file: Path  # the copy's file it is cut from
    offset: int
    rows: int
    digest: str


def plan_parts(files: list[tuple[Path, int]], columns: list[str], part_rows: int) -> list[Part]:
    """The parts of the copy's files (each with its rows), in order. A copy with no decision at all still
    gives one part, its header alone."""
    def part(i: int, k: int, file: Path, offset: int, rows: int) -> Part:
        digest = hashlib.sha256(repr((file.name, offset, rows, columns)).encode()).hexdigest()
        return Part(f"{FOLDER}/{i + 1:02d}-{k + 1:04d}.csv", file, offset, rows, digest)

    parts = [part(i, k, file, offset, min(part_rows, rows - offset))
             for i, (file, rows) in enumerate(files) for k, offset in enumerate(range(0, rows, part_rows))]
    if not parts and files:
        parts.append(part(0, 0, files[0][0], 0, 0))
    return parts


class MatchParts:
    """The parts of a refresh's decisions: those the last output does not hold begun aside at once; publish
    claims them all (claim), then puts each in place (place); stop() ends what is left of the writer."""

    def __init__(self, files: list[tuple[Path, int]], columns: list[str], out: Path, run_id: str,
                 last: dict[str, object]) -> None:
        """last: the last output's manifest (flows.publish.last_manifest): its parts are not written again."""
        self.columns = columns
        self.parts = plan_parts(files, columns, PART_ROWS)
        new = [p for p in self.parts if last.get(p.rel) != p.digest]
        self._aside: AsideCsv | None = start_aside(
            [(self.frame(p), Path(p.rel).name) for p in new], out, run_id) if new else None
        self._begun = {p.rel for p in new}

    def frame(self, part: Part) -> pl.LazyFrame:
        return pl.scan_parquet(part.file).slice(part.offset, part.rows).select(self.columns)

    def claim(self, carried: CarriedOver) -> list[Part]:
        """Each part put in the manifest of the output being written; returns those it does not link from
        the last output (to be placed once the links are done: those found gone there are placed too)."""
        return [p for p in self.parts if not carried.over(p.rel, p.digest)]

    def place(self, staging: Path, parts: list[Part], laps: dict[str, float]) -> None:
        """The parts not linked (parts) moved in from the writer's folder, or written here if it did not
        write them."""
        folder = None
        if self._aside is not None:
            w = time.perf_counter()
            folder = self._aside.wait()
            laps["write_matches_wait"] = round(time.perf_counter() - w, 3)  # what publish waited for them
            laps["matches_csv_aside"] = self._aside.seconds  # its writer's own time, begun after the link
        for part in parts:
            if folder is not None and part.rel in self._begun:
                os.replace(folder / Path(part.rel).name, staging / part.rel)
            else:
                write_csv(self.frame(part), staging / part.rel)

    def stop(self) -> None:
        """The writer ended and its folder removed (after publish took what it needed, or when a run failed)."""
        if self._aside is not None:
            self._aside.stop()


def scan_matches(out: Path) -> pl.LazyFrame:
    """Every decision an output lists (its parts one after the other), as text, as a reader of the CSVs sees it."""
    return pl.scan_csv(sorted((Path(out) / FOLDER).glob("*.csv")), infer_schema=False)
