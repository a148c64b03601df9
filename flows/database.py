"""The one place that holds a DuckDB connection: load frames, run named SQL steps, keep run history."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from flows import history_files
from flows.record_spill import hard_link
from flows.settings import DuckDBSettings
from transforms.changes import EARLIER
from transforms.decision import LINK_COLUMNS
from transforms.linking import SqlStep


def _spilled(records: list[Path]) -> tuple[str, dict | None]:
    """The run's record Parquet (flows.record_spill.RecordSpill.paths) as a relation DuckDB reads from disk,
    and its parameters; with no record, an empty relation with the same key columns."""
    if records:
        return "read_parquet($paths)", {"paths": [str(p) for p in records]}
    return ("(SELECT NULL::VARCHAR AS record_kind, NULL::VARCHAR AS record_id, NULL::UBIGINT AS row_hash, "
            "NULL::UINTEGER AS _row WHERE false)", None)


# The stored decisions saved one by one (link_decisions), as LINK_COLUMNS.
_ADDED_LINKS = "SELECT record_kind, record_id, resident_id, method, score, decision, explanation FROM link_decisions"
# A full refresh's decisions, the sorted copy's files (flows.kept_links) linked into this folder beside the
# database (their names in link_base_files), but for the records linked again since (link_overridden).
LINK_BASE = "link_decisions_base"
_BASE_LINKS = ("SELECT b.record_kind, b.record_id, b.resident_id, b.method::VARCHAR AS method, b.score, "
               "b.decision::VARCHAR AS decision, b.explanation::VARCHAR AS explanation FROM read_parquet($base) b "
               "ANTI JOIN link_overridden o ON b.record_kind = o.record_kind AND b.record_id = o.record_id")
# What the history keeps of a run's call list: who was listed, in which grid, on which list and why. The
# names, phones and addresses are the roster's to keep, not the history's (at 20M residents the whole list
# again every refresh added a gigabyte to the database each time).
CALL_HISTORY = ["resident_id", "grid_id", "list", "reason"]
# The run ids whose call lists the history keeps (parameter: how many).
_KEPT_RUNS = "SELECT run_id FROM runs ORDER BY recorded_at DESC, run_id DESC LIMIT ?"
# A run_decisions row's and a run_call_list row's columns, typed, for the views over no run yet.
_NO_DECISION = ", ".join(f"NULL::{'DOUBLE' if c == 'score' else 'VARCHAR'} AS {c}" for c in [*LINK_COLUMNS, "run_id"])
_NO_CALL_LIST = ", ".join(f"NULL::VARCHAR AS {c}" for c in [*CALL_HISTORY, "run_id"])
# The decisions of a save_link_state, from the frame registered as _links.
_INSERT_LINKS = ("INSERT INTO link_decisions SELECT record_kind, record_id, resident_id, method, score, decision, "
                 "explanation FROM _links")


def new_generation() -> str:
    """A mark for a change of the stored decisions (Database._new_generation)."""
    return uuid.uuid4().hex


class Database:
    def __init__(self, settings: DuckDBSettings):
        settings.path.parent.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self._connect()

    def _connect(self) -> None:
        settings = self.settings
        self.con = duckdb.connect(str(settings.path))
        self.con.execute(f"SET memory_limit = '{settings.memory_limit}'")
        self.con.execute(f"SET threads = {int(settings.threads)}")
        if settings.temp_directory is not None:
            settings.temp_directory.mkdir(parents=True, exist_ok=True)
            self.con.execute(f"SET temp_directory = '{settings.temp_directory}'")
        self.con.execute("SET preserve_insertion_order = false")

    def close(self) -> None:
        self.con.close()

    def release_memory(self) -> None:
        """DuckDB keeps the pages it has read or written cached up to its memory limit (gigabytes after
        linking millions of records) and frees them only when the connection closes: reconnecting gives
        that memory back before the rules and the workbooks need it. Exposed frames are dropped."""
        self.con.close()
        self._connect()

    def expose(self, name: str, frame: pl.DataFrame) -> None:
        """The frame as a view the SQL steps can read, scanned in place: no copy of millions of rows
        in DuckDB's memory, nothing written to the database file. Lives until the connection closes."""
        self.con.unregister(name)  # a frame exposed earlier under this name (one batch of records after another)
        self.con.execute(f"DROP TABLE IF EXISTS main.{name}")  # earlier versions stored a copy under this name
        self._register(name, frame)

    def drop_view(self, name: str) -> None:
        """Lets go of an exposed frame, so its memory can be freed before the connection closes."""
        self.con.unregister(name)

    def drop_temp(self, names: list[str]) -> None:
        """Drops the working tables and views the linking steps made, so DuckDB's memory goes back before
        the rules run (at millions of records they hold more than a gigabyte)."""
        kinds = self._kinds("'temp'")
        for name in names:
            if name in kinds:
                self.con.execute(f"DROP {'VIEW' if kinds[name] == 'VIEW' else 'TABLE'} temp.main.{name}")

    def run(self, steps: list[SqlStep]) -> dict[str, float]:
        timings: dict[str, float] = {}
        for step in steps:
            t = time.perf_counter()
            self.con.execute(step.sql)
            timings[step.name] = round(time.perf_counter() - t, 3)
        return timings

    def fetch(self, sql: str) -> pl.DataFrame:
        return self.con.sql(sql).pl()

    def count(self, table: str) -> int:
        return int(self.con.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0])

    def last_run(self) -> dict | None:
        """The run record of the last successful run, or None."""
        import json

        last = self.last_run_id()
        if last is None:
            return None
        return json.loads(self.con.execute("SELECT run FROM runs WHERE run_id = ?", [last]).fetchall()[0][0])

    def last_run_id(self) -> str | None:
        if not self._exists("runs"):
            return None
        rows = self.con.execute(_KEPT_RUNS, [1]).fetchall()
        return rows[0][0] if rows else None

    def record_run(self, run_id: str, since_iso: str, tables: dict[str, pl.DataFrame | pl.LazyFrame],
                   run_json: Callable[[], str], decisions: list[Path] | pl.DataFrame | None = None) -> None:
        """Appends this run's outputs, keyed by run id, so later refreshes and reports can compare; run_json is
        asked for last, so the record can say how long taking it took. A table given as a scan goes in a
        million rows at a time. The bulk is kept as files beside the database (flows.history_files), each
        read through a view: a call list's CALL_HISTORY columns (run_call_list) for the last keep_call_lists
        runs, its untested residents counted in untested_tally; and decisions, the linking decisions as the
        run made them (files on disk: a full run's sorted copy; or a frame: run_decisions). A city's every
        decision again on each two-hourly run would add tens of millions of rows a run, while the decisions
        of all runs so far tell the same."""
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS runs (run_id VARCHAR PRIMARY KEY, recorded_at TIMESTAMP, run JSON)"
        )
        self._compact_call_lists()
        recorded = {r[0] for r in self.con.execute("SELECT run_id FROM runs").fetchall()}
        history_files.remove_all_but(self._beside(history_files.DECISIONS), recorded)
        if decisions is not None:
            history_files.keep(self._beside(history_files.DECISIONS), run_id, decisions)
        call_list = tables.get("call_list")
        if call_list is not None:
            history_files.keep(self._beside(history_files.CALL_LISTS), run_id, call_list.lazy().select(CALL_HISTORY))
        with self.transaction():
            for name, table in tables.items():
                if name != "call_list":
                    for part in _parts(table):
                        self._append(f"run_{name}", part.with_columns(pl.lit(run_id).alias("run_id")))
            if call_list is not None:
                self._count_untested(run_id, since_iso)
            self.con.execute("INSERT INTO runs VALUES (?, now(), ?)", [run_id, run_json()])
        kept = {r[0] for r in self.con.execute(_KEPT_RUNS, [self.settings.keep_call_lists]).fetchall()}
        history_files.remove_all_but(self._beside(history_files.CALL_LISTS), kept)
        self._views()

    def _beside(self, kind: str) -> Path:
        return history_files.folder_beside(self.settings.path, kind)

    def _kinds(self, catalog: str = "current_database()") -> dict[str, str]:
        """Table or view, by name, of the database's own tables (or of catalog's: "'temp'")."""
        return dict(self.con.sql("SELECT table_name, table_type FROM information_schema.tables "
                                 f"WHERE table_catalog = {catalog} AND table_schema = 'main'").fetchall())

    def _views(self) -> None:
        """run_decisions: every recorded run's decisions, from its files and from the table that held them
        before 2026-12-05 (kept as it was under another name); run_call_list: the kept runs' call lists.
        Made after the record is committed: a file DuckDB cannot read (damaged on disk) leaves the views as
        they were, said in the log, and never fails the refresh that kept the history."""
        try:
            self._make_views()
        except duckdb.Error as exc:
            logging.getLogger(__name__).warning("the history's views were not made again: %s", exc)

    def _make_views(self) -> None:
        kinds = self._kinds()
        if kinds.get("run_decisions") == "BASE TABLE":
            self.con.execute("ALTER TABLE run_decisions RENAME TO run_decisions_before")
            kinds["run_decisions_before"] = "BASE TABLE"
        parts = [history_files.view_sql(self._beside(history_files.DECISIONS), "SELECT run_id FROM runs")]
        if "run_decisions_before" in kinds:
            parts.append("SELECT * FROM run_decisions_before")
        self._view("run_decisions", parts, _NO_DECISION)
        if kinds.get("run_call_list") != "BASE TABLE":  # a table from before goes at the next compaction
            kept = _KEPT_RUNS.replace("?", str(int(self.settings.keep_call_lists)))
            self._view("run_call_list", [history_files.view_sql(self._beside(history_files.CALL_LISTS), kept)],
                       _NO_CALL_LIST)

    def _view(self, name: str, parts: list[str | None], empty: str) -> None:
        parts = [p for p in parts if p] or [f"SELECT {empty} WHERE false"]
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS " + " UNION ALL BY NAME ".join(parts))

    def _append(self, table: str, part: pl.DataFrame) -> None:
        with self.registered(_incoming=part):
            if not self._exists(table):
                self.con.execute(f"CREATE TABLE {table} AS SELECT * FROM _incoming")
                return
            # Outputs gain columns between versions; older history keeps nulls in them.
            have = set(self._columns(table))
            for col, dtype in zip(part.columns, self.con.sql("SELECT * FROM _incoming").types, strict=True):
                if col not in have:
                    self.con.execute(f'ALTER TABLE {table} ADD COLUMN "{col}" {dtype}')
            self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")

    def _columns(self, table: str) -> list[str]:
        return [r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table]).fetchall()]

    def _compact_call_lists(self) -> None:
        """A history written before 2026-12-05 kept the call lists in a table, and before CALL_HISTORY every
        list whole (names, phones, addresses: at 20M a gigabyte a refresh): the untested tally is counted from
        whole lists once, and the runs that keep_call_lists keeps go to files (a one-time cost), the table
        dropped."""
        if self._kinds().get("run_call_list") != "BASE TABLE":
            return
        with self.transaction():
            if not self._exists("untested_tally") and self._columns("run_call_list") != [*CALL_HISTORY, "run_id"]:
                self.con.execute(
                    "CREATE TABLE untested_tally AS SELECT json_extract_string(r.run, '$.parameters.since') AS since, "
                    "c.resident_id, CAST(count(DISTINCT c.run_id) AS UINTEGER) AS refreshes, "
                    "min(r.recorded_at) AS first_listed "
                    "FROM run_call_list c JOIN runs r USING (run_id) WHERE c.reason = 'untested' GROUP BY ALL")
            folder = self._beside(history_files.CALL_LISTS)
            for (run_id,) in self.con.execute(_KEPT_RUNS, [self.settings.keep_call_lists]).fetchall():
                rows = self.con.sql(f"SELECT {', '.join(CALL_HISTORY)} FROM run_call_list WHERE run_id = ?",
                                    params=[run_id]).pl()
                for stale in history_files.files_of(folder, run_id):  # of a compaction that did not commit
                    stale.unlink()
                if rows.height:
                    history_files.keep(folder, run_id, rows)
            self.con.execute("DROP TABLE run_call_list")
        self._views()

    def _count_untested(self, run_id: str, since_iso: str) -> None:
        """Adds one to the count of each resident this run lists untested (its call list's file), and notes
        when a resident was first listed (the run's record time, as runs.recorded_at): what escalation reads,
        counted as runs go so that no refresh reads every earlier list again."""
        self.con.execute("CREATE TABLE IF NOT EXISTS untested_tally "
                         "(since VARCHAR, resident_id VARCHAR, refreshes UINTEGER, first_listed TIMESTAMP)")
        files = [str(p) for p in history_files.files_of(self._beside(history_files.CALL_LISTS), run_id)]
        self.con.execute(
            "CREATE TABLE _tally AS SELECT since, resident_id, CAST(sum(refreshes) AS UINTEGER) AS refreshes, "
            "min(first_listed) AS first_listed FROM "
            "(SELECT since, resident_id, refreshes, first_listed FROM untested_tally UNION ALL "
            " SELECT DISTINCT $since::VARCHAR, resident_id, 1, now()::TIMESTAMP FROM read_parquet($files) "
            " WHERE reason = 'untested') "
            "GROUP BY since, resident_id", {"since": since_iso, "files": files})
        self.con.execute("DROP TABLE untested_tally")
        self.con.execute("ALTER TABLE _tally RENAME TO untested_tally")

    # --- what the grid workers settled on verify rows --------------------------------------------
    def ensure_feedback(self) -> None:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS link_feedback (record_kind VARCHAR, record_id VARCHAR, "
            "resident_id VARCHAR, verdict VARCHAR, source VARCHAR, loaded_at TIMESTAMP, "
            "PRIMARY KEY (record_kind, record_id, resident_id))"
        )

    def store_feedback(self, verdicts: pl.DataFrame) -> int:
        """Latest verdict per (record, resident) wins: a worker may correct an earlier answer."""
        self.ensure_feedback()
        with self.registered(_incoming=verdicts), self.transaction():
            self.con.execute(
                "INSERT OR REPLACE INTO link_feedback SELECT record_kind, record_id, resident_id, verdict, "
                "source, now() FROM _incoming"
            )
        return verdicts.height

    def feedback(self) -> pl.DataFrame:
        self.ensure_feedback()
        return self.fetch("SELECT record_kind, record_id, resident_id, verdict FROM link_feedback")

    # --- linking decisions kept between refreshes --------------------------------------------------
    def open_link_state(self, key: str) -> bool:
        """True when the stored decisions were made under this fingerprint; otherwise they are dropped."""
        self.con.execute("CREATE TABLE IF NOT EXISTS link_meta (key VARCHAR)")
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS link_records (record_kind VARCHAR, record_id VARCHAR, row_hash UBIGINT)")
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS link_decisions (record_kind VARCHAR, record_id VARCHAR, "
            "resident_id VARCHAR, method VARCHAR, score DOUBLE, decision VARCHAR, explanation VARCHAR)")
        self.con.execute("CREATE TABLE IF NOT EXISTS link_households_key (key VARCHAR)")  # keep_households
        self.con.execute("CREATE TABLE IF NOT EXISTS link_roster_keys_key (key VARCHAR)")  # keep_roster_keys
        self.con.execute("CREATE TABLE IF NOT EXISTS link_generation (generation VARCHAR)")  # _new_generation
        self.con.execute("CREATE TABLE IF NOT EXISTS link_base_files (file VARCHAR)")  # save_fresh_link_state
        self.con.execute("CREATE TABLE IF NOT EXISTS link_overridden (record_kind VARCHAR, record_id VARCHAR)")
        stored = self.con.sql("SELECT key FROM link_meta").fetchall()
        if stored and stored[0][0] == key:
            missing = [f for f in self._base_files() if not Path(f).exists()]
            if not missing:
                return True
            # The database without the folder beside it (copied alone): its decisions are not all there.
            logging.getLogger(__name__).warning(
                "the stored decisions' files are missing beside the database (%s, %d files): every record is linked "
                "again", self._beside(LINK_BASE), len(missing))
        with self.transaction():
            for table in ("link_meta", "link_records", "link_decisions", "link_base_files", "link_overridden"):
                self.con.execute(f"DELETE FROM {table}")
            self.con.execute("INSERT INTO link_meta VALUES (?)", [key])
            self._new_generation()
        self._remove_unused_base()
        return False

    def _new_generation(self, generation: str | None = None) -> None:
        """Marks a change of the stored decisions (inside the transaction that makes it), so a copy of them
        made before (flows.kept_links) is known to be out of date. generation: the mark, when the caller chose it."""
        self.con.execute("DELETE FROM link_generation")
        self.con.execute("INSERT INTO link_generation VALUES (?)", [generation or new_generation()])

    def link_generation(self) -> str | None:
        """The stored decisions' generation (after open_link_state)."""
        stored = self.con.sql("SELECT generation FROM link_generation").fetchall()
        return stored[0][0] if stored else None

    def kept_households(self, key: str) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """The households (transforms.pair_decisions.households, with the row each had: _hi; their lists only,
        not the address they were found by, which a kept resident's row makes unneeded: 1.2 s against 1.4-2.5
        for 7 M households at 20M) and each resident's household row (_ri, _hi; residents with none left out),
        kept under this linking fingerprint, both in no set order; None if not kept (after open_link_state)."""
        stored = self.con.sql("SELECT key FROM link_households_key").fetchall()
        if not (stored and stored[0][0] == key and self._exists("link_households")
                and self._exists("link_household_rows")):
            return None
        return (self.fetch("SELECT _hi, household_phones, household_ids FROM link_households"),
                self.fetch("SELECT _ri, _hi FROM link_household_rows"))

    def keep_households(self, key: str, households: pl.DataFrame, rows: pl.Series) -> None:
        """Keeps this run's households and each resident's row in them (rows: _hi in the residents' order,
        transforms.pair_decisions.household_rows) under key (after open_link_state)."""
        numbered = households.with_row_index("_hi")
        members = rows.alias("_hi").to_frame().with_row_index("_ri").filter(pl.col("_hi").is_not_null())
        with self.registered(_households=numbered, _household_rows=members), self.transaction():
            self.con.execute("CREATE OR REPLACE TABLE link_households AS SELECT * FROM _households")
            self.con.execute("CREATE OR REPLACE TABLE link_household_rows AS SELECT * FROM _household_rows")
            self.con.execute("DELETE FROM link_households_key")
            self.con.execute("INSERT INTO link_households_key VALUES (?)", [key])

    def kept_roster_keys(self, key: str, names: tuple[str, ...]) -> bool:
        """The roster's blocking keys (the tables of transforms.linking.roster_keys_sql so named) as kept under
        this linking fingerprint, put in place as views of the kept copies; False if they are not kept."""
        stored = self.con.sql("SELECT key FROM link_roster_keys_key").fetchall()
        if not (stored and stored[0][0] == key and all(self._exists(f"link_kept_{name}") for name in names)):
            return False
        for name in names:
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM link_kept_{name}")
        return True

    def keep_roster_keys(self, key: str, names: tuple[str, ...]) -> None:
        """Copies of this run's roster key tables (made by its roster steps), kept under key."""
        with self.transaction():
            for name in names:
                self.con.execute(f"CREATE OR REPLACE TABLE link_kept_{name} AS SELECT * FROM {name}")
            self.con.execute("DELETE FROM link_roster_keys_key")
            self.con.execute("INSERT INTO link_roster_keys_key VALUES (?)", [key])

    def records_to_link(self, records: list[Path], judged: pl.DataFrame, unknown: list[Path] | None = None
                        ) -> pl.DataFrame:
        """record_kind, record_id, row_hash and _row of the records in the run's Parquet (flows.record_spill
        .RecordSpill.paths) that the stored state does not hold as they are now (new, or typed differently),
        and of those a worker gave a verdict on (judged: record_kind, record_id); and `stored`: whether the
        state holds the record at all (typed differently, or judged), which only then save_link_state looks
        for. Chosen by DuckDB from disk: at 20M residents the 66 M records' keys and the state's, both in
        memory, ran the refresh out of it.
        unknown: the parts among records whose records may not be held as they are (the others are the very
        parts the state was last stored from: flows.kept_links.LastLinks.known); None: all of them. At 20M,
        looking up 72 M records to find the half million added took 16 s a refresh.
        The stored keys of these records are found first (a hash join built on the run's records, probed by
        the state's 110 M keys), then the records left: as one anti-join of the stored keys (NOT EXISTS) it
        took 3.5-5.7 s at 20M after 147 batches, this 1.7-2.6."""
        unknown = records if unknown is None else unknown
        source, params = _spilled(unknown)
        new = self.con.sql(
            f"WITH r AS (SELECT record_kind, record_id, row_hash, _row FROM {source}), "
            "s AS (SELECT l.record_kind, l.record_id, l.row_hash FROM link_records l JOIN r "
            "ON l.record_kind = r.record_kind AND l.record_id = r.record_id) "
            "SELECT r.record_kind, r.record_id, r.row_hash, r._row, s.record_id IS NOT NULL AS stored "
            "FROM r LEFT JOIN s ON s.record_kind = r.record_kind AND s.record_id = r.record_id "
            "WHERE (s.row_hash = r.row_hash) IS NOT TRUE", params=params).pl()
        if judged.height == 0:
            return new
        source, params = _spilled(records)
        with self.registered(_judged=judged.select("record_kind", "record_id")):
            again = self.con.sql(
                f"SELECT r.record_kind, r.record_id, r.row_hash, r._row, true AS stored FROM {source} r "
                "WHERE EXISTS (SELECT 1 FROM _judged j WHERE j.record_kind = r.record_kind "
                "AND j.record_id = r.record_id)", params=params).pl()
        return pl.concat([new, again.join(new, on=["record_kind", "record_id"], how="anti")], how="vertical_relaxed")

    def save_link_state(self, records: pl.DataFrame, links: pl.DataFrame, stored: pl.DataFrame | None = None
                        ) -> None:
        """Replaces the state of exactly these records, in one transaction: a full refresh's decision on one of
        them is overridden from now on, whether it has a decision now or not. stored: the keys among records
        the state may hold (records_to_link's `stored`); None: any of them. A two-hour refresh's records are
        new: looking for them among the state's 110 M keys and 29 M decisions took 2.9 s at 20M."""
        on = "WHERE t.record_kind = r.record_kind AND t.record_id = r.record_id"
        stored = records if stored is None else stored
        with self.registered(_records=records, _links=links, _stored=stored.select("record_kind", "record_id")), \
                self.transaction():
            # The records stored before (linked again: changed, or judged by a worker), not the new ones: only
            # they can have a decision in the full refresh's files (a two-hour refresh's million new records
            # would otherwise be added to link_overridden every time).
            before = stored.clear()
            if stored.height:
                before = self.con.sql(f"DELETE FROM link_records t USING _stored r {on} RETURNING t.record_kind, "
                                      "t.record_id").pl()
                self.con.execute(f"DELETE FROM link_decisions t USING _stored r {on}")
            self.con.execute("INSERT INTO link_records SELECT record_kind, record_id, row_hash FROM _records")
            self.con.execute(_INSERT_LINKS)
            if before.height and self._base_files():
                with self.registered(_before=before):
                    self.con.execute(
                        "INSERT INTO link_overridden SELECT DISTINCT b.record_kind, b.record_id FROM _before b "
                        "ANTI JOIN link_overridden o ON o.record_kind = b.record_kind AND o.record_id = b.record_id")
            self._new_generation()

    def save_fresh_link_state(self, records: list[Path], links: list[Path], generation: str) -> None:
        """The state of a run that linked every record, the tables emptied by open_link_state: the records'
        keys read by DuckDB from the run's Parquet (flows.record_spill.RecordSpill.paths), never into memory;
        the decisions, the sorted copy's files (flows.kept_links), linked into the folder beside the database
        and read from there (at 20M residents, inserting the same 64 M decisions took 23 s and 0.9 GiB of the
        database). generation: the mark of the change, chosen by the caller (the copy's meta names it before
        this commits)."""
        source, params = _spilled(records)
        folder = self._beside(LINK_BASE)
        folder.mkdir(parents=True, exist_ok=True)
        names = [f"{uuid.uuid4().hex}.parquet" for _ in links]
        for path, name in zip(links, names, strict=True):
            hard_link(path, folder / name)
        with self.transaction():
            self.con.execute(f"INSERT INTO link_records SELECT record_kind, record_id, row_hash FROM {source}", params)
            for table in ("link_base_files", "link_overridden"):
                self.con.execute(f"DELETE FROM {table}")
            for name in names:
                self.con.execute("INSERT INTO link_base_files VALUES (?)", [name])
            self._new_generation(generation)
        self._remove_unused_base()

    def _base_files(self) -> list[str]:
        """The files of the full refresh's decisions the state holds (after open_link_state)."""
        folder = self._beside(LINK_BASE)
        return [str(folder / name) for (name,) in self.con.execute("SELECT file FROM link_base_files").fetchall()]

    def _remove_unused_base(self) -> None:
        """Files in the base folder the state does not name: a replaced base's, or a save that did not commit."""
        folder = self._beside(LINK_BASE)
        if folder.exists():
            used = {Path(f).name for f in self._base_files()}
            for path in folder.iterdir():
                if path.name not in used:
                    path.unlink(missing_ok=True)

    def _stored_links(self) -> tuple[str, dict]:
        """The stored decisions (LINK_COLUMNS) as a relation named d for a query to choose from, and its
        parameters: those saved one by one, and a full refresh's but for the records linked again since."""
        base = self._base_files()
        if not base:
            return f"({_ADDED_LINKS}) d", {}
        return f"({_ADDED_LINKS} UNION ALL {_BASE_LINKS}) d", {"base": base}

    def decisions_on(self, keys: pl.DataFrame) -> pl.DataFrame:
        """The stored decisions on these records (record_kind, record_id), LINK_COLUMNS."""
        stored, params = self._stored_links()
        with self.registered(_keys=keys.select("record_kind", "record_id")):
            return self.con.sql(
                f"SELECT d.* FROM {stored} SEMI JOIN _keys k ON d.record_kind = k.record_kind "
                "AND d.record_id = k.record_id", params=params or None).pl()

    def stored_links(self, records: list[Path], each: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
        """The stored decisions on the records in the run's Parquet (record_kind, record_id read by DuckDB from
        disk), sorted by record_kind and record_id, each batch of a million passed through `each` as it arrives
        (the flow compacts them). Chosen and sorted here, not in polars: a city's state holds tens of millions
        of decisions, and polars' sort copied all of them (the 20M incremental refresh peaked at 22.7 GiB
        there); DuckDB sorts within its memory limit, spilling, and gives the memory back when the flow
        reconnects after linking. Never fetched whole as text: at 5M residents that held 4.9 GiB more."""
        source, params = _spilled(records)
        stored, base = self._stored_links()
        reader = self.con.sql(
            f"SELECT d.* FROM {stored} SEMI JOIN {source} k ON d.record_kind = k.record_kind "
            "AND d.record_id = k.record_id ORDER BY d.record_kind, d.record_id",
            params=(params or {}) | base or None,
        ).to_arrow_reader(1_000_000)
        parts = [each(pl.from_arrow(batch)) for batch in reader]
        return pl.concat(parts) if parts else each(pl.from_arrow(reader.schema.empty_table()))

    # --- call attempts from returned sheets ----------------------------------------------------------
    def ensure_attempts(self) -> None:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS call_attempts (file_hash VARCHAR, source VARCHAR, resident_id VARCHAR, "
            "reason VARCHAR, outcome VARCHAR, note VARCHAR, grid_worker VARCHAR, recorded_at TIMESTAMP, "
            "PRIMARY KEY (file_hash, source, resident_id, reason))"
        )

    def store_attempts(self, attempts: pl.DataFrame) -> int:
        """Returns how many attempts were new (the same returned file loaded twice counts once)."""
        self.ensure_attempts()
        before = self.count("call_attempts")
        with self.registered(_incoming=attempts.unique(["file_hash", "source", "resident_id", "reason"], keep="last")):
            self.con.execute(
                "INSERT OR IGNORE INTO call_attempts SELECT file_hash, source, resident_id, reason, outcome, note, "
                "grid_worker, now()::TIMESTAMP FROM _incoming"
            )
        return self.count("call_attempts") - before

    def attempts_since(self, since) -> pl.DataFrame:
        self.ensure_attempts()
        return self.con.sql(
            "SELECT resident_id, reason, outcome, grid_worker, recorded_at FROM call_attempts "
            "WHERE recorded_at >= ? ORDER BY recorded_at", params=[since]
        ).pl()

    def earlier_untested_counts(self, since_iso: str) -> pl.DataFrame:
        """transforms.changes.EARLIER of the round: how many earlier runs listed each resident untested, and
        when the first of them was recorded (untested_tally, kept by record_run)."""
        self._compact_call_lists()
        if not self._exists("untested_tally"):
            return EARLIER.clear()
        return self.con.sql(
            "SELECT resident_id, refreshes AS earlier_untested_refreshes, first_listed AS untested_since "
            "FROM untested_tally WHERE since = ?", params=[since_iso]).pl().cast(EARLIER.schema)

    def previous_call_list(self) -> pl.DataFrame | None:
        last = self.last_run_id()
        if last is None or not self._exists("run_call_list"):
            return None
        files = history_files.files_of(self._beside(history_files.CALL_LISTS), last)
        if files:  # read from its file, not through the view's glob of the day's lists
            return pl.read_parquet(files, columns=["resident_id", "reason", "list"])
        return self.con.sql(
            "SELECT resident_id, reason, list FROM run_call_list WHERE run_id = ?", params=[last]).pl()

    def coverage_trend(self, since_iso: str) -> pl.DataFrame:
        """(recorded_at, coverage_rate) of the whole population at each earlier refresh of this round."""
        if not self._exists("run_coverage"):
            return pl.DataFrame(schema={"recorded_at": pl.Datetime("us"), "coverage_rate": pl.Float64})
        return self.con.sql(
            "SELECT r.recorded_at, c.coverage_rate FROM run_coverage c JOIN runs r USING (run_id) "
            "WHERE c.level = 'total' AND json_extract_string(r.run, '$.parameters.since') = ? "
            "ORDER BY r.recorded_at", params=[since_iso]
        ).pl()

    @contextmanager
    def transaction(self):
        """BEGIN; COMMIT if the block ends normally, ROLLBACK if anything escapes it."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    @contextmanager
    def registered(self, **frames: pl.DataFrame):
        """The frames readable by name in SQL for the block, and gone after it whatever happens."""
        for name, frame in frames.items():
            self._register(name, frame)
        try:
            yield
        finally:
            for name in frames:
                self.con.unregister(name)

    def _register(self, name: str, frame: pl.DataFrame) -> None:
        """Handed over as Arrow string views, polars' own layout: the default conversion to large strings
        copies every text column (0.4 GiB more at a million residents)."""
        self.con.register(name, frame.to_arrow(compat_level=pl.CompatLevel.newest()))

    def _exists(self, table: str) -> bool:
        return bool(self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchall()[0][0])


def _parts(frame: pl.DataFrame | pl.LazyFrame) -> Iterator[pl.DataFrame]:
    """A frame whole, or a scan a million rows at a time (at least one part, so an empty table is made)."""
    if not isinstance(frame, pl.LazyFrame):
        yield frame
        return
    some = False
    for part in frame.collect_batches(chunk_size=1_000_000):
        some = True
        yield part
    if not some:
        yield frame.head(0).collect()


def db_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
