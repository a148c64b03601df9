"""The facts of the test records that match no resident, kept from one refresh to the next, so the
unregistered list (transforms.unregistered) is made without reading a city's tests again.

The list shows a few of them (the round's, placed on the roster), but finding them read eight columns of
every test and kept the few: 6-6.5 s a two-hourly refresh at 20M residents (45 M tests, 2.3 M of them with no
decision). What is kept is the facts of the records that had no decision, with the identity of the tests'
parts they were read from (flows.kept_links.part_identity: the same files, hard-linked from the last load).
A refresh whose first test parts are those very parts takes the kept facts of the records still without a
decision; the facts of the others (records added since, or linked before and not now) are read from the
parts after those, and only if some are still not found, from the rest. When the link says which records
came into that set (flows.kept_links.LoneChange), only theirs are looked for, first among the parts read
since (flows.kept_unregistered keeps where the others were placed). A source read anew (other files)
starts afresh. The facts hold names, IDs, phones and addresses, as the loaded sources beside them do.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl

from flows.kept_links import part_identity
from flows.kept_meta import read_meta, write_meta
from transforms.unregistered import UNREGISTERED_FACTS

MAX_FILES = 8  # files the kept facts may be made of before they are written as one again


class KeptLoneFacts:
    def __init__(self, folder: Path, parts: list[Path]):
        """folder: where the facts are kept; parts: the run's test facts (RECORD_FACTS), in their order."""
        self.folder, self.parts = folder, parts
        self.figures: dict[str, int] = {}  # after facts(): kept, read_after, read_before (records each)

    def _kept(self) -> tuple[list[Path], int]:
        """The kept files, and how many of the run's first parts they were read from (0: none usable)."""
        meta = read_meta(self.folder)
        if meta is None:
            return [], 0
        files = [self.folder / name for name in meta.get("files", [])]
        before = meta.get("parts", [])
        if (meta.get("columns") != UNREGISTERED_FACTS or not files or not all(f.exists() for f in files)
                or len(before) > len(self.parts) or part_identity(self.parts[:len(before)]) != before):
            return [], 0
        return files, len(before)

    def facts(self, lone: pl.DataFrame | pl.LazyFrame, came: pl.DataFrame | None = None) -> pl.DataFrame:
        """UNREGISTERED_FACTS of the test records in lone (record_id), and kept for the next refresh. came: the
        records among them that had a decision, or were not there, when the facts were last kept
        (flows.kept_links.LoneChange): then only theirs are found and returned (at 20M, 50,000 a two-hourly
        refresh against 4.7 M), unless the kept files are due to be written as one."""
        files, known = self._kept()
        whole = came is None or not files or len(files) >= MAX_FILES
        ids = (lone if whole else came).lazy().select("record_id").collect()
        after, before = self.parts[known:], self.parts[:known]
        # The whole set is mostly among the kept facts; the newcomers mostly among the parts read since.
        order = (("kept", files), ("read_after", after), ("read_before", before)) if whole else (
            ("read_after", after), ("kept", files), ("read_before", before))
        found, missing, read, new = [], ids, {}, []
        for name, source in order:
            read[name] = 0
            if not (missing.height and source):
                continue
            scan = pl.scan_parquet(source).select(UNREGISTERED_FACTS)
            got = (scan.join(missing.lazy(), on="record_id", how="semi") if name == "kept" and whole
                   else scan.filter(pl.col("record_id").is_in(missing["record_id"].implode()))).collect()
            found.append(got)
            if name != "kept":
                new.append(got)
            read[name] = got.height
            missing = missing.join(got.select("record_id"), on="record_id", how="anti")
        out = pl.concat(found) if found else pl.DataFrame(schema=self._schema())
        self._save(files, out, pl.concat(new) if new else out.clear())
        self.figures = read
        if whole and came is not None:
            return out.join(came.select("record_id"), on="record_id", how="semi")
        return out

    def _schema(self) -> pl.Schema:
        if self.parts:
            return pl.scan_parquet(self.parts).select(UNREGISTERED_FACTS).collect_schema()
        return pl.Schema({c: pl.Datetime("us") if c == "sampled_at" else pl.String for c in UNREGISTERED_FACTS})

    def _save(self, files: list[Path], everything: pl.DataFrame, new: pl.DataFrame) -> None:
        """The records read now as one more file beside the kept ones; all of them (everything: the records
        with no decision now, none that has one since) as one file when there are none kept or too many."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not files or len(files) >= MAX_FILES:  # facts() then found the whole set
            files, frame = [], everything
        else:
            frame = new
        if frame.height or not files:
            name = f"facts-{uuid.uuid4().hex}.parquet"
            frame.write_parquet(self.folder / name, compression="lz4")
            files = [*files, self.folder / name]
        meta = {"columns": UNREGISTERED_FACTS, "parts": part_identity(self.parts), "files": [f.name for f in files]}
        write_meta(self.folder, meta)
        for other in self.folder.glob("facts-*.parquet"):
            if other not in files:
                other.unlink(missing_ok=True)
