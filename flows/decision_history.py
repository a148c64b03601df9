"""Each recorded run's linking decisions, kept as Parquet files in a folder beside the database, and read
through the database's view run_decisions (flows.database.Database.record_run).

A full refresh decides every record: at 20M residents 64 M decisions, which took 24-25 s to insert into a DuckDB
table (most of the record stage) and added 0.9 GiB to the database, although the same rows were already on disk
in the sorted copy the run keeps for the next refresh (flows.kept_links). That copy's files are hard-linked
here instead: no byte is copied, and the history keeps them when the copy is replaced. A run that linked only
new and changed records writes its few decisions as one file.

A file is named by its run (RUN_SEP): the view takes the run id from the name and joins the runs table, so the
files of a run whose record failed are never read, and the next record removes them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import polars as pl

from flows.record_spill import hard_link

RUN_SEP = "--"  # <run_id>--<part>.parquet


def folder_beside(database: Path) -> Path:
    return database.parent / "run_decisions"


def keep(folder: Path, run_id: str, decisions: list[Path] | pl.DataFrame) -> None:
    """The run's decisions in the folder under its run id: files on disk linked (flows.record_spill.hard_link),
    a frame written under another name first, so the view's glob never meets a file half written."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(decisions, pl.DataFrame):
        name = f"{run_id}{RUN_SEP}{uuid.uuid4().hex}"
        decisions.write_parquet(folder / f".{name}.writing", compression="lz4")
        os.replace(folder / f".{name}.writing", folder / f"{name}.parquet")
        return
    for path in decisions:
        hard_link(path, folder / f"{run_id}{RUN_SEP}{uuid.uuid4().hex}.parquet")


def run_of(name: str) -> str:
    return name.split(RUN_SEP, 1)[0]


def remove_unrecorded(folder: Path, recorded: set[str]) -> None:
    """Files of runs the database never recorded (a record that failed after its files were kept, or while
    one was written)."""
    if folder.is_dir():
        for path in [*folder.glob("*.parquet"), *folder.glob(".*.writing")]:
            if path.suffix == ".writing" or run_of(path.name) not in recorded:
                path.unlink(missing_ok=True)
