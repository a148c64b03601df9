"""The last refresh's rulings of the whole roster, kept in the state folder, so a refresh rules again only the
residents whose inputs changed (transforms.rule_parts.splice).

At 20M residents ruling the city took about 95 s a refresh and finding its evidence 45-60 s more, while a
two-hourly batch touches the records of a few hundred thousand residents. A resident's rules read their
roster row, their linked records and their call outcomes, under the round's window and the rule settings.
The kept rulings are used only when all of those are known to be the same for everyone else:

- the same roster, round, rule settings and rules code (a key of the roster parts' identity on disk, as
  flows.roster_derived keys them, of the settings and of the code's fingerprint);
- the same facts of every record ruled before: each record source's parts begin with the parts ruled last
  time, the very files (flows.loaded_sources takes them back hard-linked; a source read again is written anew);
- decisions that differ from the last ones only for the residents flows.kept_links names (it merged the last
  copy, the one these rulings were made from, with the decisions made now); or, when refreshes since these
  rulings died between their link and the end of their rules, from a copy a few refreshes back, the residents
  each of those refreshes changed being kept with the copy (they are ruled again too);
- made by the last refresh recorded in the database, whose call list the change figures compare with; or
  by a refresh after it that failed before it was recorded (a full disk while it wrote its books), which
  keeps whom it ruled since the last recorded refresh's rulings: they are ruled again too, or, when it ruled
  everyone, the lists are compared whole (at 20M residents the refresh after a failed one ruled the whole
  city again, 273 s).

The residents whose call outcomes changed are found here, from the outcomes kept beside the rulings. Of the
residents whose decisions changed, those who only gained test decisions and were tested this round already are
left as they are (flows.ruling).
Anything else, or a kept set that is not whole, and the whole roster is ruled as before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import polars as pl

from flows.code_fingerprint import code_fingerprint, with_transforms_they_import
from flows.kept_links import part_identity
from flows.kept_meta import read_meta, write_meta
from transforms.rule_parts import RosterRules, RuleInputs

_FRAMES = ("call_list", "measures", "grids", "escalation_inputs", "wrong_numbers")


def rules_code_files() -> list[Path]:
    """The source files whose code a ruling is made by."""
    root = Path(__file__).resolve().parents[1]
    # The rules task's module, not the flow's: the flow imports the books' and the report's transforms too.
    seeds = [root / "transforms" / "rule_parts.py", root / "transforms" / "evidence.py", root / "flows" / "ruling.py",
             Path(__file__).resolve()]
    return with_transforms_they_import(seeds)


@cache
def _code() -> str:
    return code_fingerprint(rules_code_files(), ("polars",))


def rules_key(roster_parts: list[Path], given: RuleInputs) -> str:
    parts = {"roster": part_identity(roster_parts), "code": _code(), "round": asdict(given.round),
             "rules": asdict(given.rules)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Kept:
    rules: RosterRules
    outcomes: pl.DataFrame  # the outcome summary they were ruled with
    run_id: str  # the refresh that made them
    # resident_id of those ruled since the rulings of the last refresh recorded (save's since); None: all
    since: pl.DataFrame | None = None


def changed_outcomes(before: pl.DataFrame, now: pl.DataFrame) -> pl.DataFrame:
    """resident_id of the residents whose outcome summary row is new, gone or different."""
    cols = now.columns
    before = before.select(cols).cast(now.schema)
    added = now.join(before, on=cols, how="anti", nulls_equal=True)
    gone = before.join(now, on=cols, how="anti", nulls_equal=True)
    return pl.concat([added.select("resident_id"), gone.select("resident_id")]).unique()


def _behind(meta: dict, links_from: str | None, earlier: Sequence[tuple[str, Path]]) -> list[Path] | None:
    made_from = meta.get("links_file")
    if links_from is None or made_from is None:
        return None
    if made_from == links_from:
        return []
    for i, (copy, _) in enumerate(earlier):
        if copy == made_from:
            return [touched for _, touched in earlier[:i + 1]]
    return None


class KeptRules:
    """One set of rulings in a folder of its own, named by meta.json (written last, so a set is whole or absent)."""

    def __init__(self, folder: Path, key: str, facts: dict[str, list[Path]]):
        self.folder, self.key = folder, key
        self.facts = {kind: part_identity(parts) for kind, parts in facts.items()}
        self._saving: Future | None = None
        self.saved_in = 0.0  # seconds save_aside's thread took

    def _meta(self) -> dict | None:
        return read_meta(self.folder)

    def why_not(self, last_run: str | None, links_from: str | None,
                earlier: Sequence[tuple[str, Path]] = ()) -> str | None:
        """Why the kept rulings cannot be used by this refresh (None: they can). last_run: the run id of the
        database's last refresh; links_from: the kept decisions' copy this refresh's were merged from; earlier:
        the copies before it, newest first (flows.kept_links.LastLinks.steps), as behind() takes them."""
        meta = self._meta()
        if meta is None:
            return "none kept"
        if meta.get("key") != self.key or meta.get("polars") != version("polars"):
            return "another roster, round, rule settings or rules code"
        if last_run is None or (meta.get("run_id") != last_run and meta.get("base_run") != last_run):
            return "not made by the last refresh recorded"
        if _behind(meta, links_from, earlier) is None:
            return "the decisions were not merged from the copy they were ruled with"
        facts = meta.get("facts", {})
        if set(facts) != set(self.facts) or any(self.facts[k][:len(v)] != v for k, v in facts.items()):
            return "records ruled before were read again"
        files = [*_FRAMES, "outcomes", *(["since"] if meta.get("since") else [])]
        if not all((self.folder / meta["dir"] / f"{name}.parquet").exists() for name in files):
            return "the kept files are incomplete"
        return None

    def behind(self, links_from: str | None, earlier: Sequence[tuple[str, Path]]) -> list[Path] | None:
        """The files of whom each refresh changed between the copy the kept rulings were made from and
        links_from ([] when it is that copy); None when it is neither links_from nor one of `earlier`."""
        return _behind(self._meta() or {}, links_from, earlier)

    def load(self) -> Kept:
        meta = self._meta()
        here = self.folder / meta["dir"]
        frames = {name: pl.read_parquet(here / f"{name}.parquet") for name in _FRAMES}
        since = pl.read_parquet(here / "since.parquet") if meta.get("since") else None
        return Kept(RosterRules(**frames), pl.read_parquet(here / "outcomes.parquet"), meta["run_id"], since)

    def save(self, run_id: str, links_file: str | None, rules: RosterRules, outcomes: pl.DataFrame,
             base_run: str | None = None, since: pl.DataFrame | None = None) -> None:
        """Keeps a refresh's rulings for the next; those before stay named until these are whole.
        base_run: the last refresh recorded when these were made; since: resident_id of the residents ruled
        since its rulings (None: everyone was ruled), ruled again after these if this refresh is not recorded
        (everyone's list rows then compared with the last recorded list's)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"rules-{uuid.uuid4().hex}"
        here = self.folder / name
        here.mkdir()
        for frame in _FRAMES:
            getattr(rules, frame).write_parquet(here / f"{frame}.parquet", compression="lz4")
        outcomes.write_parquet(here / "outcomes.parquet", compression="lz4")
        if since is not None:
            since.select("resident_id").write_parquet(here / "since.parquet", compression="lz4")
        meta = {"key": self.key, "polars": version("polars"), "run_id": run_id, "links_file": links_file,
                "facts": self.facts, "dir": name, "base_run": base_run, "since": since is not None}
        write_meta(self.folder, meta)
        for other in self.folder.glob("rules-*"):
            if other.name != name:
                shutil.rmtree(other, ignore_errors=True)

    def save_aside(self, run_id: str, links_file: str | None, rules: RosterRules, outcomes: pl.DataFrame,
                   base_run: str | None = None, since: pl.DataFrame | None = None) -> None:
        """save() in a thread of its own while the flow goes on to the call list's books, which leave a core
        idle much of the time (at 20M residents saving took 3.9-7.5 s of a two-hour refresh); wait() joins it."""
        def save() -> None:
            t = time.perf_counter()
            self.save(run_id, links_file, rules, outcomes, base_run, since)
            self.saved_in = time.perf_counter() - t

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kept-rules")
        self._saving = pool.submit(save)
        pool.shutdown(wait=False)  # its thread ends when the save does; not a `with`, which would wait here

    def wait(self) -> None:
        """Until save_aside's rulings are kept; raises what saving them raised."""
        saving, self._saving = self._saving, None
        if saving is not None:
            saving.result()
