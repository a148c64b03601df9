"""The decisions on the last refresh's records, kept sorted beside the database, so a refresh that linked
only the records added since does not fetch and sort a city's decisions out of DuckDB again.

At 20M residents that fetch (65.8 M decisions chosen by the run's records and sorted by record) was 84 of
the 158 s an incremental refresh spent linking. The copy is used only when it is certainly the stored
decisions on the records this refresh holds besides those it linked now:

- it was made under the same linking key and from the database as it is (a generation the database
  changes in the transaction of every change to its decisions: flows.database.Database._new_generation);
- each kind's records of the last refresh are this refresh's first records of that kind, as when an export
  grows at its end or is unchanged (a count, and a wrapping sum of the hashes of their record numbers);
  the records after them are the added ones: those not linked now take their stored decisions.

Otherwise the decisions are fetched from DuckDB as before. The rest of the refresh reads the decisions from
this copy (the rules; matches/, its files' CSV parts, flows.match_parts), so keeping it costs no more writing
than spilling them did. It holds resident numbers and the decisions, no names, IDs or phones.

The copy is a few files, each sorted: the city's decisions, then those each refresh since made on its added
records (read in order by merging them, or as they come where order does not matter). Writing the city's
68 M decisions again for half a million new ones took 7 s at 20M. At MAX_RUNS files the later ones are
merged into one (the city's file, and its 112 parts of matches/ at 20M, stay as they are); the copy is
written as one file again when a refresh linked again records the copy holds, or its later files hold more
than MAX_LATER_SHARE of the first's decisions.

Beside the copy, the residents whose decisions each of the last few refreshes changed (resident_id, a file a
refresh: `steps` in meta.json, newest first), so rulings made from an older copy still hold when refreshes
since then died between their link and the end of their rules (flows.kept_rules): without them the refresh
after one killed there ruled the whole city again (at 20M residents 309 s against 155-190).

Beside the copy, the test records with no decision at all (record_id): the records the unregistered list is
made from. Finding them is an anti-join of a city's tests against its decisions (6.4 s at 20M); a refresh that
carries the copy on changes them only where it linked or added records, and says which (LoneChange), so the
list's places are carried on too (flows.kept_unregistered).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import polars as pl

from flows.kept_meta import read_meta, write_meta
from flows.record_spill import ROW, RecordSpill
from transforms.contract import KIND_OF_SOURCE, TESTS
from transforms.sorted_links import merge_sorted_links, merge_sorted_runs
from transforms.unregistered import unlinked_tests

MAX_RUNS = 8  # files a copy may be made of
MAX_LATER_SHARE = 0.25  # of the decisions in the copy's first file, what its later files may hold together
MAX_STEPS = 4  # refreshes whose changed residents are kept: rulings that many copies old still hold


def part_identity(parts: list[Path]) -> list[str]:
    """Each part's device, inode, size and modification time: the same file, not the same name (a source
    taken back from the last load is hard-linked, one read again is written to new files)."""
    out = []
    for part in parts:
        st = part.stat()
        out.append(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
    return out


@dataclass(frozen=True)
class LastLinks:
    path: Path  # the copy's newest file: its name is the copy's (flows.kept_rules)
    rows: dict[str, int]  # kind -> records of the last refresh
    sums: dict[str, int]  # kind -> the wrapping sum of their record numbers' hashes (_key_sums)
    parts: dict[str, list[str]]  # kind -> part_identity of the record parts they were read from
    files: tuple[Path, ...] = ()  # the copy's files, each sorted, the city's first
    file_rows: tuple[int, ...] = ()  # the decisions in each
    lone: Path | None = None  # the test records with no decision (record_id), when kept with the copy
    file_tallies: tuple[list, ...] = ()  # decision_tally's rows of each file, when kept (older copies: none)
    # Newest first: (an earlier copy's name, the file of the residents whose decisions the next refresh
    # changed), back from this copy through the refreshes that carried it on; each file still on disk.
    steps: tuple[tuple[str, Path], ...] = ()

    def scan(self) -> pl.LazyFrame:
        """The copy in order (record_kind, record_id)."""
        return _in_order(self.files, self.rows)

    def known(self, spill: RecordSpill) -> dict[str, int]:
        """Per kind, how many of the run's first record parts are the very parts of the last refresh (their
        records are its records, as they were: the stored state holds each of them as it is)."""
        out = {}
        for kind, parts in spill.files.items():
            before = self.parts.get(kind)
            if before and part_identity(parts[:len(before)]) == before:
                out[kind] = len(before)
        return out


TALLY = {"record_kind": pl.String, "decision": pl.String, "confirmed": pl.Boolean, "n": pl.Int64}


def decision_tally(links: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """How many decisions of each kind and decision, and whether a worker confirmed them (TALLY)."""
    return (links.lazy().group_by("record_kind", pl.col("decision").cast(pl.String),
                                  (pl.col("method").cast(pl.String) == "worker_confirmed").alias("confirmed"))
            .agg(pl.len().alias("n")).collect().cast(TALLY))


def _summed(tallies: list[list]) -> list:
    """decision_tally's rows of several files as those of one."""
    rows = [row for rows in tallies for row in rows]
    return pl.DataFrame(rows, schema=TALLY, orient="row").group_by("record_kind", "decision", "confirmed").agg(
        pl.col("n").sum()).sort("record_kind", "decision", "confirmed").rows()


def _in_order(files: Iterable[Path], kinds: Iterable[str]) -> pl.LazyFrame:
    """A copy's files, each sorted, read as one in order (record_kind, record_id)."""
    return merge_sorted_runs([pl.scan_parquet(f) for f in files], kinds)


# The test records' kind: those with no decision are kept (the unregistered list reads them), and a resident
# whose only new decisions are on them is told apart (KeptLinks.carried's tests_added).
_TEST_KIND = KIND_OF_SOURCE[TESTS.name]


@dataclass(frozen=True)
class LoneChange:
    """How the test records with no decision differ from the last copy's (a file of that copy, named since):
    left, those linked again now (each has no decision now only if it is also among came); came, those
    added or linked again now that have none."""
    since: str
    left: pl.DataFrame  # record_id
    came: pl.DataFrame  # record_id


@dataclass(frozen=True)
class LoneTests:
    """The test records with no decision (record_id), as the saved copy keeps them in path, and how they
    differ from the last copy's (None: found anew)."""
    path: Path
    change: LoneChange | None = None

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.path)


def _still_lone(last_lone: Path, added: list[pl.DataFrame], relinked: pl.DataFrame, extra: pl.DataFrame
                ) -> tuple[pl.DataFrame, LoneChange]:
    """The test records with no decision now: the last copy's, less those linked again now, with those of the
    records added or linked again now (their decisions all in extra) that have none; and that change."""
    def tests(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("record_kind") == _TEST_KIND).select("record_id")
    again = tests(relinked)
    still = pl.scan_parquet(last_lone).join(again.lazy(), on="record_id", how="anti").collect()
    looked_at = pl.concat([*(tests(a) for a in added), again]).unique()
    came = unlinked_tests(looked_at, extra)
    return pl.concat([still, came]), LoneChange(last_lone.name, again, came)


def _key_sums(spill: RecordSpill, kind: str, first: int) -> tuple[int, int]:
    """Wrapping sums of the hashes of kind's record numbers: of its first `first` records, and of all."""
    h = pl.col("record_id").hash(seed=0)
    sums = spill.scan(kind).select(h.filter(pl.col(ROW) < first).sum().alias("first"), h.sum().alias("all"))
    first_sum, all_sum = sums.collect().row(0)
    return int(first_sum or 0), int(all_sum or 0)


def _added_keys(spill: RecordSpill, kind: str, first: int) -> pl.DataFrame:
    """record_kind, record_id of kind's records after its first `first`."""
    return spill.scan(kind).filter(pl.col(ROW) >= first).select("record_kind", "record_id").collect()


def key_sums(spill: RecordSpill, last: LastLinks | None, known: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Per kind: the sum over the records the last copy was made on (the first ones), and over all: with the
    counts, how the last refresh's records are known to be this one's first. known (LastLinks.known): kinds
    whose first parts are the last refresh's; only their new parts are read (at 20M, 72 M record numbers
    hashed again every refresh otherwise)."""
    out = {}
    for kind in spill.counts():
        if last is not None and kind in known:
            first = last.sums.get(kind, 0)
            added = spill.files[kind][known[kind]:]
            more = (pl.scan_parquet(added).select(pl.col("record_id").hash(seed=0).sum()).collect().item()
                    if added else 0)
            out[kind] = (first, (first + int(more or 0)) % (1 << 64))  # the sums wrap, as polars' do
        else:
            out[kind] = _key_sums(spill, kind, last.rows.get(kind, 0) if last else 0)
    return out


class KeptLinks:
    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key
        self.saved: str | None = None  # the copy's newest file's name, once saved
        self.files: list[Path] = []  # and its files
        self.file_rows: list[int] = []  # and the decisions in each
        self.kinds: list[str] = []
        self._later: tuple[LastLinks, pl.DataFrame] | None = None  # set by carried: the copy and what it adds
        # set by carried: the test records left with no decision, and how they differ from the last copy's
        self._lone: tuple[pl.DataFrame, LoneChange] | None = None
        self._step: tuple[LastLinks, pl.DataFrame] | None = None  # set by carried: the copy and whom it changed
        self.lone: LoneTests | None = None  # once saved: where they are, and how they changed
        self.steps: list[tuple[str, Path]] = []  # once saved: its steps (LastLinks.steps)
        # Once saved: decision_tally of the whole copy, from each file's kept with it (a two-hour refresh adds
        # one file: counting the city's 72 M decisions again took 1.6 s at 20M)
        self.tally: pl.DataFrame | None = None

    def _meta(self) -> dict | None:
        return read_meta(self.folder)

    def load(self, generation: str | None) -> LastLinks | None:
        """The last copy, if it was made from the stored decisions of this generation under this key."""
        meta = self._meta()
        if (meta is None or generation is None or meta.get("key") != self.key or meta.get("generation") != generation
                or meta.get("polars") != version("polars")):  # the record numbers' hashes are polars'
            return None
        files = [self.folder / name for name in meta.get("files", [meta["file"]])]
        if not all(f.exists() for f in files):
            return None
        lone = self.folder / meta["lone"] if meta.get("lone") else None
        steps = []
        for name, touched in meta.get("steps", []):
            if not (self.folder / touched).exists():
                break  # the older ones are no use without it
            steps.append((name, self.folder / touched))
        return LastLinks(self.folder / meta["file"], meta["rows"], meta["sums"], meta.get("parts", {}), tuple(files),
                         tuple(meta.get("file_rows", [])), lone if lone is not None and lone.exists() else None,
                         tuple(meta.get("file_tallies", [])), tuple(steps))

    def carried(self, last: LastLinks, spill: RecordSpill, sums: dict[str, tuple[int, int]], todo: pl.DataFrame,
                fresh: pl.DataFrame, stored: Callable[[pl.DataFrame], pl.DataFrame]
                ) -> tuple[pl.LazyFrame, pl.DataFrame, pl.DataFrame] | None:
        """Every decision on the run's records, sorted: the last copy's, less those of the records linked now
        (todo: record_kind, record_id, ROW), merged with the decisions made now (fresh) and the stored ones of
        the added records not linked now (stored(keys) -> their decisions); and the residents whose decisions
        may differ from the last copy's (resident_id: those of every decision not taken from it, and of the
        last copy's decisions on records linked now), which are all the rules need rule again
        (flows.kept_rules); and those of them whose every such decision is a test record's new decision, none
        of the copy's taken away (flows.ruling does not rule again those already tested this round). None when
        the last refresh's records are not this one's first records of each kind. sums: key_sums(spill, last)."""
        rows = spill.counts()
        if any(rows.get(kind, 0) < n for kind, n in last.rows.items()):
            return None
        if any(sums[kind][0] != last.sums.get(kind, 0) for kind in rows):
            return None
        added = [_added_keys(spill, kind, last.rows.get(kind, 0)) for kind in rows]
        keys = ["record_kind", "record_id"]
        not_now = pl.concat(added).join(todo.select(keys), on=keys, how="anti") if added else None
        extra = fresh
        if not_now is not None and not_now.height:
            extra = pl.concat([fresh, stored(not_now).select(fresh.columns).cast(fresh.schema)])
        touched = [extra.select("resident_id")]
        # Only records among the last refresh's (a row number below its count) can have a decision in its copy:
        # at 20M the copy is 66 M rows, neither read for the added records nor joined against them.
        among_last = pl.lit(False)
        for kind, n in last.rows.items():
            among_last = among_last | ((pl.col("record_kind") == kind) & (pl.col(ROW) < n))
        relinked = todo.filter(among_last).select(keys)
        base = last.scan()
        tests_added = (extra.lazy().drop_nulls("resident_id").group_by("resident_id")
                       .agg((pl.col("record_kind") == _TEST_KIND).all().alias("tests_only"))
                       .filter("tests_only").select("resident_id").collect())
        if relinked.height:
            touched.append(base.join(relinked.lazy(), on=keys, how="semi").select("resident_id").collect())
            tests_added = tests_added.join(touched[-1], on="resident_id", how="anti")
            base = base.join(relinked.lazy(), on=keys, how="anti", maintain_order="left")
        else:  # nothing of the copy changes: what was added can be kept as a file of its own (save)
            self._later = (last, extra)
        residents = pl.concat(touched, how="vertical_relaxed").drop_nulls().unique()
        self._lone = None if last.lone is None else _still_lone(last.lone, added, relinked, extra)
        self._step = (last, residents)
        return merge_sorted_links(base, extra, [*last.rows, *rows]), residents, tests_added

    def _add_to(self, last: LastLinks, added: int) -> str | None:
        """How the decisions added are kept with the last copy's: "add" as one more file; "fold" with its later
        files as one (at MAX_RUNS files: the city's first file, and its parts in matches/, stay as they
        are, flows.match_parts); None: the copy written whole."""
        if len(last.files) != len(last.file_rows):
            return None
        if sum(last.file_rows[1:]) + added > MAX_LATER_SHARE * last.file_rows[0]:
            return None
        return "add" if len(last.files) < MAX_RUNS else "fold"

    def save(self, links: pl.DataFrame | pl.LazyFrame, spill: RecordSpill, sums: dict[str, tuple[int, int]],
             generation: str | None) -> pl.LazyFrame:
        """Writes the run's decisions (sorted by record_kind, record_id) as the copy for the next refresh, and
        returns a scan of it. The copy before stays until the new one is complete (a failed write leaves the
        last copy and its meta, which the database's new generation then rules out)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"links-{uuid.uuid4().hex}.parquet"
        target = self.folder / name
        later, self._later = self._later, None
        how = self._add_to(later[0], later[1].height) if later is not None else None
        if later is not None and how is not None:
            last, added = later  # sorted here, not in carried: the merged copy is then never made
            schema = pl.scan_parquet(last.files[0]).collect_schema()
            added = added.cast(schema).sort("record_kind", "record_id")
            tallies = [*(last.file_tallies if len(last.file_tallies) == len(last.files)
                         else [decision_tally(pl.scan_parquet(f)).rows() for f in last.files])]
            if how == "add":
                added.write_parquet(target, compression="lz4")
                files, file_rows = [*(f.name for f in last.files), name], [*last.file_rows, added.height]
                tallies.append(decision_tally(added).rows())
            else:  # the later files and the added decisions merged (each sorted) into the copy's second file
                kinds = {*spill.counts(), *added["record_kind"].unique().to_list()}
                merge_sorted_runs([*(pl.scan_parquet(f) for f in last.files[1:]), added.lazy()], kinds
                                  ).sink_parquet(target, compression="lz4")
                files = [last.files[0].name, name]
                file_rows = [last.file_rows[0], sum(last.file_rows[1:]) + added.height]
                tallies = [tallies[0], _summed([*tallies[1:], decision_tally(added).rows()])]
        else:
            if isinstance(links, pl.LazyFrame):
                links.sink_parquet(target, compression="lz4")
            else:
                links.write_parquet(target, compression="lz4")
            files, file_rows = [name], [pl.scan_parquet(target).select(pl.len()).collect().item()]
            tallies = [decision_tally(pl.scan_parquet(target)).rows()]
        carried, self._lone = self._lone, None
        lone, change = carried if carried is not None else (None, None)
        if lone is None:  # made anew from the run's tests and the copy just written
            lone = (unlinked_tests(spill.scan(_TEST_KIND), pl.scan_parquet([self.folder / f for f in files]))
                    if _TEST_KIND in spill.files else pl.DataFrame(schema={"record_id": pl.String}))
        lone_name = f"lone-{uuid.uuid4().hex}.parquet"
        lone.write_parquet(self.folder / lone_name, compression="lz4")
        steps = self._steps()
        meta = {"key": self.key, "generation": generation, "polars": version("polars"), "file": name,
                "files": files, "file_rows": file_rows, "file_tallies": tallies, "lone": lone_name, "steps": steps,
                "rows": spill.counts(), "sums": {kind: whole for kind, (_, whole) in sums.items()},
                "parts": {kind: part_identity(parts) for kind, parts in spill.files.items()}}
        write_meta(self.folder, meta)
        keep = {*files, lone_name, *(touched for _, touched in steps)}
        for other in [f for prefix in ("links", "lone", "touched") for f in self.folder.glob(f"{prefix}-*.parquet")]:
            if other.name not in keep:
                other.unlink(missing_ok=True)
        self.saved, self.files, self.kinds = name, [self.folder / f for f in files], list(spill.counts())
        self.file_rows = file_rows
        self.lone = LoneTests(self.folder / lone_name, change)
        self.steps = [(copy, self.folder / touched) for copy, touched in steps]
        self.tally = pl.DataFrame(_summed(tallies), schema=TALLY, orient="row")
        return self.scan()

    def _steps(self) -> list[tuple[str, str]]:
        """meta.json's steps for the copy being saved: the last copy's name and whom this refresh changed (kept
        in a file now), then the last copy's own steps; none when this copy was not carried on from the last."""
        step, self._step = self._step, None
        if step is None:
            return []
        last, residents = step
        touched = f"touched-{uuid.uuid4().hex}.parquet"
        residents.write_parquet(self.folder / touched, compression="lz4")
        earlier = [(name, path.name) for name, path in last.steps]
        return [(last.path.name, touched), *earlier][:MAX_STEPS]

    def lone_tests(self) -> LoneTests:
        """The saved copy's test records with no decision."""
        return self.lone

    def scan(self, ordered: bool = True) -> pl.LazyFrame:
        """The saved copy: in order (record_kind, record_id; each of its files is so), or its files one after
        the other, for readers to whom the order does not matter (merging costs each reader about a second at 20M)."""
        if ordered or len(self.files) == 1:
            return _in_order(self.files, self.kinds)
        return pl.scan_parquet(self.files)
