"""The run history's bulk kept as Parquet files in folders beside the database, read through its views
run_decisions and run_call_list (flows.database.Database.record_run); the runs, the tally and the coverage
stay in its tables.

A full refresh decides every record: at 20M residents 64 M decisions, which took 24-25 s to insert into a DuckDB
table (most of the record stage) and added 0.9 GiB to the database, although the same rows were already on disk
in the sorted copy the run keeps for the next refresh (flows.kept_links). That copy's files are hard-linked
here instead: no byte is copied, and the history keeps them when the copy is replaced. A run that linked only
new and changed records writes its few decisions as one file. Each run's call list (9.2 M rows at 20M, kept for
a day of runs) was inserted too, and the oldest deleted, every two hours: a file written, and one removed.

A file is named by its run (RUN_SEP): the views take the run id from the name and read only the runs the
database recorded, so the files of a run whose record failed are never read; the next record removes them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import polars as pl

from flows.record_spill import hard_link

RUN_SEP = "--"  # <run_id>--<part>.parquet
DECISIONS, CALL_LISTS = "run_decisions", "run_call_lists"  # the folders beside the database


def folder_beside(database: Path, kind: str) -> Path:
    return database.parent / kind


def _written(folder: Path, name: str, table: pl.DataFrame | pl.LazyFrame) -> None:
    """table as folder/name.parquet, written under another name first: a view's glob never meets a file half
    written. A scan is streamed from disk to the file."""
    folder.mkdir(parents=True, exist_ok=True)
    writing = folder / f".{name}.writing"
    if isinstance(table, pl.LazyFrame):
        table.sink_parquet(writing, compression="lz4")
    else:
        table.write_parquet(writing, compression="lz4")
    os.replace(writing, folder / f"{name}.parquet")


def keep(folder: Path, run_id: str, table: list[Path] | pl.DataFrame | pl.LazyFrame) -> None:
    """The run's rows in the folder under its run id: files on disk linked (flows.record_spill.hard_link),
    a frame or a scan written."""
    if isinstance(table, list):
        folder.mkdir(parents=True, exist_ok=True)
        for path in table:
            hard_link(path, folder / f"{run_id}{RUN_SEP}{uuid.uuid4().hex}.parquet")
    else:
        _written(folder, f"{run_id}{RUN_SEP}{uuid.uuid4().hex}", table)


def run_of(name: str) -> str:
    return name.split(RUN_SEP, 1)[0]


def files_of(folder: Path, run_id: str) -> list[Path]:
    return sorted(folder.glob(f"{run_id}{RUN_SEP}*.parquet"))


def remove_all_but(folder: Path, runs: set[str]) -> None:
    """Files of other runs than these (for decisions: those the database never recorded, a record that
    failed after its files were kept; for call lists: those too, and the runs the history no longer keeps),
    and what a killed record was writing."""
    if folder.is_dir():
        for path in [*folder.glob("*.parquet"), *folder.glob(".*.writing")]:
            if path.suffix == ".writing" or run_of(path.name) not in runs:
                path.unlink(missing_ok=True)


def view_sql(folder: Path, runs_sql: str) -> str | None:
    """A SELECT of the folder's files with their run_id, for the runs runs_sql gives; None with no file."""
    if not any(folder.glob("*.parquet")):
        return None
    glob = str(folder.resolve() / "*.parquet").replace("'", "''")
    run = f"split_part(parse_filename(filename), '{RUN_SEP}', 1)"
    return (f"SELECT * EXCLUDE (filename), {run} AS run_id FROM read_parquet('{glob}', filename = true, "
            f"union_by_name = true) WHERE {run} IN ({runs_sql})")
