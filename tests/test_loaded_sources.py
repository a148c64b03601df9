"""A source unchanged since the last refresh is taken from what that refresh made of it (flows.loaded_sources):
the same rows on disk, quarantine, figures and suite verdict as reading it again, and read again whenever the
file, the code or the round's end could make a difference."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.generate import write_synthetic
from flows.loaded_sources import LoadedSources
from flows.meter import StageMeter
from flows.readers import InputError, read_table
from flows.record_spill import FactSpill, RecordSpill
from flows.settings import SAMPLES, load_settings
from flows.sources import SourceLoader, file_sources
from transforms.contract import ROSTER, TESTS
from transforms.parsing import parse_rows


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("loaded")
    write_synthetic(generate_city(), data)
    return data


def generate_city():
    from transforms.synthetic import generate
    return generate(1200, seed=11)


def _campaign(city: Path, where: Path) -> Path:
    """A copy of the city's files: the tests change them."""
    shutil.copytree(city, where)
    return where


def _load(campaign: Path, state: Path, run: str, *, cache: bool = True, as_of: datetime | None = None,
          only: tuple[str, ...] | None = None) -> dict:
    """One refresh's loading of every source (or only these), in this process: what load returned and what
    it wrote."""
    settings = load_settings(campaign / "campaign.toml", out=str(state / "out"), db=str(state / "gridsweep.duckdb"))
    if as_of is not None:
        settings = replace(settings, as_of=as_of)
    sources = {name: opener for name, opener in file_sources(settings).items() if only is None or name in only}
    return _load_sources(settings, sources, state, run, cache=cache)


def _load_sources(settings, sources: dict, state: Path, run: str, *, cache: bool = True) -> dict:
    spill, facts = RecordSpill(state / f"records-{run}"), FactSpill(state / f"facts-{run}")
    loader = SourceLoader(settings, state / f"docs-{run}", state / "failed", spill, facts, StageMeter(), {}, {}, 500,
                          LoadedSources(state / "loaded_sources") if cache else None)
    loaded = {name: loader.load(name, opener) | {"suite": loader.suite(name)}
              for name, opener in sources.items()}
    written = {f"{type(s).__name__}/{kind}": s.scan(kind).collect() for s in (spill, facts) for kind in s.files}
    spill.remove()  # as the run does when it ends: the kept parts must outlive the run's links to them
    facts.remove()
    return {"loaded": loaded, "written": written}


def _reused(run: dict) -> dict[str, bool]:
    return {name: loaded["reused"] for name, loaded in run["loaded"].items()}


def assert_same_load(a: dict, b: dict) -> None:
    """Everything the flow takes from loading, but whether it was read now."""
    assert list(a["written"]) == list(b["written"])
    for part, frame in a["written"].items():
        assert frame.equals(b["written"][part]), part
    for name, x in a["loaded"].items():
        y = b["loaded"][name]
        assert x["quarantine"].equals(y["quarantine"]), name
        assert (x["rows_used"], x["notes"], x["table"]) == (y["rows_used"], y["notes"], y["table"]), name
        assert (x["suite"].success, x["suite"].rows_total, x["suite"].rows_checked) == (
            y["suite"].success, y["suite"].rows_total, y["suite"].rows_checked), name
        assert x["suite"].expectations == y["suite"].expectations, name
        assert json.dumps(x["flags"], default=str) == json.dumps(y["flags"], default=str), name


def test_an_unchanged_source_is_taken_from_the_last_load_as_reading_it_again_would_give(city, tmp_path):
    campaign = _campaign(city, tmp_path / "city")
    first = _load(campaign, tmp_path / "state", "1")
    assert _reused(first) == {"roster": False, "tests": False, "vaccinations": False}
    again = _load(campaign, tmp_path / "state", "2")
    assert _reused(again) == {"roster": True, "tests": True, "vaccinations": True}
    assert sum(x["quarantine"].height for x in again["loaded"].values()) > 0
    assert again["written"]["RecordSpill/test"].height > 1200
    assert_same_load(first, again)
    # The same from a state that never kept a load.
    assert_same_load(_load(campaign, tmp_path / "fresh", "1", cache=False), again)


def test_a_changed_or_touched_file_is_read_again(city, tmp_path):
    campaign = _campaign(city, tmp_path / "city")
    state = tmp_path / "state"
    _load(campaign, state, "1")
    tests = campaign / "tests.csv"
    text = tests.read_bytes()
    last = text.rstrip(b"\r\n").rsplit(b"\n", 1)[1]
    tests.write_bytes(text + last.replace(b"T", b"X", 1) + b"\n")  # one more test record, appended
    changed = _load(campaign, state, "2")
    assert _reused(changed) == {"roster": True, "tests": False, "vaccinations": True}
    assert changed["loaded"]["tests"]["table"].rows == _load(campaign, tmp_path / "fresh", "1", cache=False)[
        "loaded"]["tests"]["table"].rows
    assert_same_load(_load(campaign, tmp_path / "fresh2", "1", cache=False), changed)
    # Rewritten with the same bytes: the file system cannot tell it is the same, so it is read again.
    roster = campaign / "roster.csv"
    roster.write_bytes(roster.read_bytes())
    assert _reused(_load(campaign, state, "3")) == {"roster": False, "tests": True, "vaccinations": True}
    # A kept load missing a part (a disk tidied by hand) is never used.
    manifest = json.loads((state / "loaded_sources" / "vaccinations" / "manifest.json").read_text())
    (state / "loaded_sources" / "vaccinations" / manifest["fact_parts"][0]).unlink()
    assert _reused(_load(campaign, state, "4"))["vaccinations"] is False
    # Nor one kept by other code: its fingerprint is part of the key.
    for name in ("roster", "tests", "vaccinations"):
        path = state / "loaded_sources" / name / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["key"]["code"] = "0" * 16
        path.write_text(json.dumps(manifest))
    assert not any(_reused(_load(campaign, state, "5")).values())


def test_a_later_round_end_reuses_a_source_only_when_it_parses_the_same(city, tmp_path):
    campaign = _campaign(city, tmp_path / "city")
    state = tmp_path / "state"
    first = _load(campaign, state, "1")
    settings = load_settings(campaign / "campaign.toml")
    as_of = settings.as_of
    windows = {name: json.loads((state / "loaded_sources" / name / "manifest.json").read_text())["as_of_window"]
               for name in ("roster", "tests", "vaccinations")}
    # The generated tests include some typed after the round's end: their reason names it to the minute.
    lo, hi = (datetime.fromisoformat(t) for t in windows["tests"])
    assert hi - lo == timedelta(minutes=1) and lo == as_of.replace(tzinfo=None, second=0)
    # Thirty seconds later every source parses the same: all three are taken from the last load, and equal
    # what reading them under the new round's end gives.
    later = as_of + timedelta(seconds=30)
    reused = _load(campaign, state, "2", as_of=later)
    assert _reused(reused) == {"roster": True, "tests": True, "vaccinations": True}
    assert_same_load(_load(campaign, tmp_path / "fresh", "1", cache=False, as_of=later), reused)
    # A day later the records quarantined as after the round are in it: those sources are read again, the
    # roster (births long before) is not.
    day = as_of + timedelta(days=1)
    moved = _load(campaign, state, "3", as_of=day)
    assert _reused(moved) == {"roster": True, "tests": False, "vaccinations": windows["vaccinations"][1] is None}
    fresh = _load(campaign, tmp_path / "fresh2", "1", cache=False, as_of=day)
    assert_same_load(fresh, moved)
    assert fresh["loaded"]["tests"]["quarantine"].height < first["loaded"]["tests"]["quarantine"].height
    # Before the latest vaccination, the vaccinations parse differently: read again.
    vacc_lo = datetime.fromisoformat(windows["vaccinations"][0])
    earlier = vacc_lo - timedelta(seconds=1)
    back = _load(campaign, state, "4", as_of=earlier.replace(tzinfo=as_of.tzinfo))
    assert back["loaded"]["vaccinations"]["reused"] is False
    assert_same_load(_load(campaign, tmp_path / "fresh3", "1", cache=False,
                           as_of=earlier.replace(tzinfo=as_of.tzinfo)), back)


# Round ends and events within a few days of each other, to the second, and births near them.
_BASE = datetime(2022, 5, 20, 18, 0)
_times = st.integers(-3 * 86400, 3 * 86400).map(lambda s: _BASE + timedelta(seconds=s))


def _rows(path: Path, contract, key: str, n: int) -> pl.DataFrame:
    """n copies of the first good row of a sample export, each with its own key."""
    first = read_table(path, contract).frame.head(1)
    return pl.concat([first] * n).with_columns(
        pl.format("K{}", pl.int_range(pl.len())).alias(key), pl.int_range(2, n + 2, dtype=pl.Int64).alias("_line"))


@settings(max_examples=60, deadline=None)
@given(events=st.lists(_times, min_size=1, max_size=8), births=st.lists(_times, min_size=1, max_size=8),
       first=_times, second=_times)
def test_a_window_holds_exactly_where_rows_parse_the_same(events, births, first, second):
    """AsOfWindow: rows parsed under one round's end parse the same under another exactly when the first
    parse's window holds the second (so a kept load is never used where reading again would differ)."""
    tests = _rows(SAMPLES / "tests.csv", TESTS, "record_id", len(events)).with_columns(
        pl.Series("sampled_at", [t.strftime("%Y-%m-%d %H:%M:%S") for t in events]))
    roster = _rows(SAMPLES / "roster.csv", ROSTER, "resident_id", len(births)).with_columns(
        pl.Series("birth_date", [t.strftime("%Y-%m-%d") for t in births]))
    for contract, raw in ((TESTS, tests), (ROSTER, roster)):
        a, b = parse_rows(raw, contract, first), parse_rows(raw, contract, second)
        assert a.rows.height + a.quarantine.height == raw.height
        same = a.rows.equals(b.rows) and a.quarantine.equals(b.quarantine) and a.notes == b.notes
        assert a.window.holds(second) == same, (contract.name, a.window, second)


def test_the_kept_loads_fingerprint_covers_the_code_loading_runs_and_only_that():
    """The transforms loading imports, directly or not, are in its fingerprint (a change to the name
    normaliser, imported through transforms.normalise, must not leave an old load in use); the report's, the
    rules' and the linking code are not (changing them need not read a city's exports again: at 20M residents
    a docstring of transforms/pair_decisions.py, reached through the record spill's key, cost a 9-minute
    reload in a two-hour refresh)."""
    from flows.code_fingerprint import with_transforms_they_import
    from flows.loaded_sources import _LOADING_MODULES
    from flows.settings import REPO_ROOT

    found = {p.relative_to(REPO_ROOT).as_posix()
             for p in with_transforms_they_import([REPO_ROOT / m for m in _LOADING_MODULES])}
    assert {"flows/sources.py", "flows/record_spill.py", "transforms/parsing.py", "transforms/normalise.py",
            "transforms/names.py", "transforms/idcard.py", "transforms/record_rows.py"} <= found
    assert not {"transforms/report.py", "transforms/rules.py", "transforms/sheets.py", "transforms/evidence.py",
                "transforms/rule_parts.py", "transforms/pair_decisions.py", "transforms/comparison.py",
                "transforms/decision.py", "transforms/linking.py", "transforms/edit_distance.py"} & found


# --- A file that grew at its end: read on from where the last load ended -------------------------------------

_HEADER = [c.zh for c in TESTS.columns]
_cells = st.text(alphabet=["a", "7", "中", ",", '"', " ", "\n", "\r"], max_size=5)


def _csv_record(cells: list[str], end: str) -> str:
    quote = lambda c: '"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\n\r') else c  # noqa: E731
    return ",".join(quote(c) for c in cells) + end


def _read_whole(path: Path) -> tuple[pl.DataFrame, object]:
    from flows.readers import CsvTable

    table = CsvTable(path, TESTS)
    frame = pl.concat(list(table.slices(3)))
    return frame, table.end()


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.one_of(st.lists(_cells, min_size=0, max_size=len(_HEADER) + 2), st.just([])),
                     min_size=1, max_size=12),
       crlf=st.booleans(), gb18030=st.booleans(), cut=st.integers(0, 11), chop=st.integers(1, 3))
def test_a_grown_csv_read_on_from_its_end_gives_the_rows_of_a_whole_read(tmp_path_factory, rows, crlf, gb18030,
                                                                          cut, chop):
    """flows.readers.grown_table: the rows added to an export, read alone on from where the last read of it
    ended, are the rows a read of the whole grown file gives after it, numbered alike: whatever the cells
    (quotes, delimiters, line breaks inside cells, blank and ragged rows), line ends and encoding. A file
    that ended inside a row is never read on from."""
    from flows.readers import StartChanged, grown_table

    folder = tmp_path_factory.mktemp("grown")
    end = "\r\n" if crlf else "\n"
    records = [_csv_record(_HEADER, end)] + [_csv_record(r, end) for r in rows]
    encoding = "gb18030" if gb18030 else "utf-8"
    blobs = [r.encode(encoding) for r in records]
    whole = b"".join(blobs)
    full = folder / "full.csv"
    full.write_bytes(whole)
    everything, _ = _read_whole(full)
    text = "".join(records)
    for at in (min(cut, len(rows)) + 1, None):
        # A row's end, or a few characters short of the end (inside the last row, or a blank line's end lost).
        prefix = b"".join(blobs[:at]) if at is not None else text[:-chop].encode(encoding)
        before = folder / "before.csv"
        before.write_bytes(prefix)
        try:
            first, last = _read_whole(before)
        except InputError:
            assert at is None  # cut inside a quoted cell: a broken file, refused as before
            continue
        closed = last is not None and last.closed
        if at is None:
            assert not closed or prefix.endswith(b"\n") and all(b.count(b"\n") == 1 for b in blobs)
            continue
        assert closed == (last is not None and all(b.count(b"\n") == 1 for b in blobs[:at]))
        if not closed:
            continue
        grown = grown_table(full, TESTS, last)
        assert grown is not None
        added = pl.concat(list(grown.slices(2)))
        assert pl.concat([first, added]).equals(everything)
        assert grown.end().closed == all(b.count(b"\n") == 1 for b in blobs)
        assert grown.start_holds()
        # The same bytes changed before the end: its added rows can be read, but the file's start is found not
        # to hold, and where the read ended is never given (nor kept to read on from).
        full.write_bytes(b"X" + whole[1:])
        changed = grown_table(full, TESTS, last)
        list(changed.slices(2))
        assert not changed.start_holds()
        with pytest.raises(StartChanged):
            changed.end()
        full.write_bytes(whole)


def _refuses_direct(folder: Path) -> bool:
    import errno
    import os

    probe = folder / "probe"
    probe.write_bytes(b"x")
    try:
        os.close(os.open(probe, os.O_RDONLY | os.O_DIRECT))
    except OSError as e:
        return e.errno == errno.EINVAL
    return False


@pytest.mark.parametrize("direct", [True, False])
def test_a_file_s_digest_read_a_block_at_a_time_is_xxh3_of_its_bytes(tmp_path, monkeypatch, direct):
    """flows.readers._digest hashes in a thread while it reads and counts: the file's XXH3-128, its prefix's, and
    its line breaks (counted after the prefix only when the prefix's are given) must be those of the bytes,
    wherever the blocks and the prefix fall: blocks of 4 KiB read past the page cache (O_DIRECT), whose two
    buffers take turns while one is hashed, or, where the file system refuses that, of 7 bytes read through it."""
    import errno
    import os

    import xxhash

    import flows.readers as readers
    import flows.uncached_read as uncached_read

    block = 4096 if direct else 7
    monkeypatch.setattr(uncached_read, "BLOCK", block)
    if not direct:
        def refuse(path, flags, *args):
            if flags & getattr(os, "O_DIRECT", 0):
                raise OSError(errno.EINVAL, "O_DIRECT refused")
            return os.open(path, flags, *args)
        monkeypatch.setattr(uncached_read.os, "open", refuse)
    lines = 2000 if direct else 9
    data = "".join(f"T{i:04d},张三{i % 3},\n" for i in range(lines)).encode() + b"tail\r\n"
    assert len(data) > 4 * block and len(data) % block
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    assert b"".join(bytes(b) for b in uncached_read.uncached_blocks(path)) == data
    # Past the page cache when asked (a file system without O_DIRECT reads through it: nothing to test then)
    past_cache = isinstance(next(uncached_read.uncached_blocks(path)), memoryview)
    assert past_cache or not direct and not past_cache or _refuses_direct(tmp_path)
    for prefix in (None, 0, 1, block - 1, block, block + 1, 3 * block + 5, len(data) - 1, len(data)):
        for known in ((None,) if prefix is None else (None, data[:prefix].count(b"\n"))):
            seen = readers._digest(path, prefix, known)
            assert (seen.size, seen.digest, seen.line_breaks, seen.last) == (
                len(data), xxhash.xxh3_128(data).hexdigest(), data.count(b"\n"), b"\n")
            if prefix is not None:
                assert seen.prefix_digest == xxhash.xxh3_128(data[:prefix]).hexdigest()


TESTS_ONLY = ("tests",)  # a grown export is a source of its own: the others need not be loaded beside it


def _append(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    with open(path, "ab") as fh:
        fh.write("".join(line + "\n" for line in lines).encode(encoding))


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_an_export_grown_at_its_end_is_read_on_from_the_last_load_as_reading_it_whole_would_give(
        city, tmp_path, encoding):
    """Two hours later the test system's export is the same bytes and more rows (under another name too): only
    the added rows are read, and the load equals a whole read: duplicates of an earlier row quarantined as a
    whole read quarantines them, the quarantine, figures, suite verdict and sample the same."""
    campaign = _campaign(city, tmp_path / "city")
    tests = campaign / "tests.csv"
    lines = tests.read_bytes().decode("gb18030").splitlines()  # as generated (a superset of UTF-8's ASCII)
    morning, noon, evening = lines[: len(lines) // 2], lines[len(lines) // 2: len(lines) * 3 // 4], lines[len(lines) * 3 // 4:]
    tests.write_bytes(("\n".join(morning) + "\n").encode(encoding))
    state = tmp_path / "state"
    first = _load(campaign, state, "1", only=TESTS_ONLY)
    assert first["loaded"]["tests"]["rows_carried"] == 0
    earlier_id = morning[5].split(",")[0]
    retyped = [earlier_id + "," + ",".join(morning[9].split(",")[1:]),  # a record number met before: a duplicate
               "", "T9,某某,居民身份证,,,2022-13-45 25:00:00,某采样点,"]  # a blank line; a bad time
    _append(tests, noon + retyped, encoding)
    grown = tests.rename(campaign / "tests_noon.csv")  # another name: what counts is the bytes
    (campaign / "campaign.toml").write_text((campaign / "campaign.toml").read_text().replace("tests.csv", grown.name))
    noon_load = _load(campaign, state, "2", only=TESTS_ONLY)
    assert noon_load["loaded"]["tests"]["reused"] is False
    assert noon_load["loaded"]["tests"]["rows_carried"] == first["loaded"]["tests"]["table"].rows == len(morning) - 1
    whole = _load(campaign, tmp_path / "fresh", "1", cache=False, only=TESTS_ONLY)
    assert_same_load(whole, noon_load)
    reasons = whole["loaded"]["tests"]["quarantine"]
    assert reasons.height > first["loaded"]["tests"]["quarantine"].height + 1  # the duplicate and the bad time
    # And again in the evening, on from the noon load.
    _append(grown, evening, encoding)
    evening_load = _load(campaign, state, "3", only=TESTS_ONLY)
    assert evening_load["loaded"]["tests"]["rows_carried"] == noon_load["loaded"]["tests"]["table"].rows
    assert_same_load(_load(campaign, tmp_path / "fresh2", "1", cache=False, only=TESTS_ONLY), evening_load)
    # A row retyped in place, as long as it was, and rows added: the added rows are read on from the evening
    # load as before, the check of the file's start fails once they are, and the file is read whole.
    row = morning[3]
    digit = next(i for i, ch in enumerate(row) if ch.isdigit())
    retyped_row = row[:digit] + str((int(row[digit]) + 1) % 10) + row[digit + 1:]
    text = grown.read_bytes()
    grown.write_bytes(text.replace(row.encode(encoding), retyped_row.encode(encoding), 1))
    _append(grown, morning[10:14], encoding)  # sent again: duplicates
    in_place = _load(campaign, state, "4", only=TESTS_ONLY)
    assert in_place["loaded"]["tests"]["rows_carried"] == 0
    assert_same_load(_load(campaign, tmp_path / "fresh3", "1", cache=False, only=TESTS_ONLY), in_place)
    # A row changed before the end: the file is read whole, and still loads as it should.
    text = grown.read_bytes()
    assert morning[4].encode(encoding) in text
    grown.write_bytes(text.replace(morning[4].encode(encoding), morning[4].replace(",", ",X", 1).encode(encoding), 1))
    changed = _load(campaign, state, "5", only=TESTS_ONLY)
    assert changed["loaded"]["tests"]["rows_carried"] == 0
    assert_same_load(_load(campaign, tmp_path / "fresh4", "1", cache=False, only=TESTS_ONLY), changed)


def test_the_last_loads_keys_are_read_while_the_grown_files_start_is_hashed(city, tmp_path, monkeypatch):
    """A 20M city's export: opening it on from its last end (and, before the check of its start went on
    beside the rows, hashing its first 5 GB) and reading the last load's parser keys took 2.8 + 2.6 s one
    after the other. Each waits here for the other to have begun: done in turn, the first would wait in
    vain."""
    import threading

    from flows.loaded_sources import Kept
    from flows.sources import FileSource

    campaign = _campaign(city, tmp_path / "city")
    tests = campaign / "tests.csv"
    lines = tests.read_bytes().decode("gb18030").splitlines()
    half = len(lines) // 2
    tests.write_bytes(("\n".join(lines[:half]) + "\n").encode("gb18030"))
    state = tmp_path / "state"
    _load(campaign, state, "1", only=TESTS_ONLY)
    _append(tests, lines[half:], "gb18030")
    hashing, reading = threading.Event(), threading.Event()
    waited: dict[str, bool] = {}
    grown, keys = FileSource.grown, Kept.parser_keys

    def grown_beside(self, end):
        hashing.set()
        waited["keys began while hashing"] = reading.wait(10)
        return grown(self, end)

    def keys_beside(self):
        reading.set()
        waited["hashing began while reading keys"] = hashing.wait(10)
        return keys(self)

    monkeypatch.setattr(FileSource, "grown", grown_beside)
    monkeypatch.setattr(Kept, "parser_keys", keys_beside)
    noon = _load(campaign, state, "2", only=TESTS_ONLY)
    assert waited == {"keys began while hashing": True, "hashing began while reading keys": True}
    assert noon["loaded"]["tests"]["rows_carried"] == half - 1
    monkeypatch.undo()
    assert_same_load(_load(campaign, tmp_path / "fresh", "1", cache=False, only=TESTS_ONLY), noon)


def test_an_export_that_ended_inside_a_row_is_read_whole_when_it_grows(city, tmp_path):
    """The last load's file did not end with a line break: what was added may go on its last row."""
    campaign = _campaign(city, tmp_path / "city")
    tests = campaign / "tests.csv"
    text = tests.read_bytes()
    cut = text.rstrip(b"\n")
    cut = cut[: cut.rindex(b"\n") + 20]  # inside the last row
    tests.write_bytes(cut)
    state = tmp_path / "state"
    _load(campaign, state, "1", only=TESTS_ONLY)
    tests.write_bytes(text)
    again = _load(campaign, state, "2", only=TESTS_ONLY)
    assert again["loaded"]["tests"]["rows_carried"] == 0
    assert_same_load(_load(campaign, tmp_path / "fresh", "1", cache=False, only=TESTS_ONLY), again)


def test_the_inbox_exports_are_read_on_from_the_files_of_the_last_load(city, tmp_path):
    """The scheduled refresh reads the inbox's stored exports: a refresh after more files came reads only
    their rows, after those of the files before (in the order the files came), as reading all would."""
    from flows.database import Database
    from flows.inbox import InboxFile, known_hashes, read_new_files, store_files
    from flows.readers import file_hash
    from flows.sources import StoredSource

    rows = read_table(city / "tests.csv", TESTS).frame.drop("_line")
    cut = rows.height // 3
    # The afternoon's file repeats a morning record number: a duplicate, whichever way it is read.
    parts = {"tests_1.csv": rows.head(cut), "tests_2.csv": rows.slice(cut, cut),
             "tests_3.csv": pl.concat([rows.slice(2 * cut), rows.slice(4, 1)])}
    for name, part in parts.items():
        part.write_csv(tmp_path / name)

    def settings_of(state: Path):
        return load_settings(city / "campaign.toml", out=str(state / "out"), db=str(state / "gridsweep.duckdb"))

    def store(state: Path, names: list[str]) -> None:
        files = [InboxFile("tests", tmp_path / n, file_hash(tmp_path / n)) for n in names]
        db = Database(settings_of(state).duckdb)
        try:
            known_hashes(db)
            store_files.fn(db, files, read_new_files.fn(files))
        finally:
            db.close()

    def load(state: Path, run: str, cache: bool = True) -> dict:
        settings = settings_of(state)
        return _load_sources(settings, {"tests": StoredSource(settings, "tests")}, state, run, cache=cache)

    state = tmp_path / "state"
    store(state, ["tests_1.csv"])
    morning = load(state, "1")
    store(state, ["tests_3.csv", "tests_2.csv"])  # two more, dropped together: read by name after the first
    afternoon = load(state, "2")
    assert afternoon["loaded"]["tests"]["rows_carried"] == morning["loaded"]["tests"]["table"].rows == cut
    fresh = tmp_path / "fresh"
    store(fresh, ["tests_2.csv", "tests_1.csv", "tests_3.csv"])
    whole = load(fresh, "1", cache=False)
    assert_same_load(whole, afternoon)
    assert whole["loaded"]["tests"]["quarantine"].height > morning["loaded"]["tests"]["quarantine"].height
    # Nothing new: taken whole from the last load.
    assert load(state, "3")["loaded"]["tests"]["reused"] is True
