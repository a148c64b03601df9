"""Loading in a process of its own (flows.loading): what comes back, and what happens when it goes wrong."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
from functools import partial
from pathlib import Path

import polars as pl
import pytest

from flows.generate import write_synthetic
from flows.loading import ALLOCATOR_VARIABLE, LOADING_ALLOCATOR, LoadingProcess
from flows.meter import StageMeter
from flows.readers import InputError, open_table
from flows.record_spill import FactSpill, RecordSpill
from flows.settings import load_settings
from flows.sources import SourceLoader, file_sources
from transforms.contract import ROSTER, TESTS
from transforms.synthetic import generate


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("loading")
    write_synthetic(generate(1500, seed=5), data)
    return data


def _settings(campaign: Path, state: Path):
    return load_settings(campaign / "campaign.toml", out=str(state / "out"), db=str(state / "gridsweep.duckdb"))


def _spills(state: Path) -> tuple[RecordSpill, FactSpill]:
    return RecordSpill(state / "records"), FactSpill(state / "facts")


def _written(spill: RecordSpill | FactSpill) -> dict[str, pl.DataFrame]:
    return {kind: spill.scan(kind).collect() for kind in spill.files}


def test_the_loading_process_gives_back_what_loading_here_gives(campaign, tmp_path):
    """The same sources loaded in this process and in a child: the same rows on disk (roster, records, facts),
    the same quarantine, counts, flags and suite verdicts, and the same timings' stages."""
    here, there = tmp_path / "here", tmp_path / "there"
    loaded_here, loaded_there = {}, {}
    spill, facts = _spills(here)
    settings = _settings(campaign, here)
    loader = SourceLoader(settings, here / "docs", here / "failed", spill, facts, StageMeter(), {}, {}, 700)
    for name, opener in file_sources(settings).items():
        loaded_here[name] = loader.load(name, opener) | {"suite": loader.suite(name)}
    child_spill, child_facts = _spills(there)
    settings = _settings(campaign, there)
    timings, peaks = {"read": 1.0}, {}
    with LoadingProcess(settings, there / "docs", there / "failed", child_spill, child_facts, 700) as loading:
        for name, opener in file_sources(settings).items():
            loaded_there[name] = loading.load(name, opener, timings, peaks)
        suites = loading.finish(timings, peaks)
    assert multiprocessing.active_children() == []  # the child has ended
    assert set(loaded_there) == {"roster", "tests", "vaccinations"}
    for name, a in loaded_here.items():
        b = loaded_there[name]
        assert b["rows_used"] == a["rows_used"] > 0 and b["notes"] == a["notes"] and b["flags"] == a["flags"]
        assert b["quarantine"].equals(a["quarantine"]), name
        assert (b["table"].rows, b["table"].encoding, b["table"].ignored_columns) == (
            a["table"].rows, a["table"].encoding, a["table"].ignored_columns)
        assert suites[name].success == a["suite"].success and suites[name].rows_total == a["suite"].rows_total
    assert sum(b["quarantine"].height for b in loaded_there.values()) > 0
    for mine, theirs in ((spill, child_spill), (facts, child_facts)):
        written, adopted = _written(mine), _written(theirs)
        assert list(adopted) == list(written) and all(adopted[k].equals(written[k]) for k in written)
    assert child_spill.keys().equals(spill.keys()) and child_spill.keys().height > 1500
    # Each source's seconds are added to what the flow had; the peaks are the child's, per stage.
    assert timings["read"] > 1.0 and {"validate", "normalise"} <= set(timings) and set(peaks) == {
        "read", "validate", "normalise"}
    assert all(p > 0 for p in peaks.values())


def _slowly(opener, yielded: list, pause: float):
    """The opener's table, each slice handed out `pause` seconds after the last (a big export's pace)."""
    def opened():
        table = opener()
        slices = table.slices

        def paced(size):
            for part in slices(size):
                time.sleep(pause)
                yielded.append(part.height)
                yield part
        table.slices = paced
        return table
    return opened


def test_the_suites_run_beside_the_loads_and_a_failed_one_stops_the_next_source_early(campaign, tmp_path, monkeypatch):
    """Each source's suite runs on the loader's own thread while the next source is read, and every verdict is
    in once the last source is; a roster that fails its suite stops the refresh within the records' first
    slices (an InputError naming the roster's file and column), not once they are all read."""
    from expectations.suites import SuiteRunner

    ran_on: dict[str, str] = {}
    check = SuiteRunner.check

    def recorded(self, name, sample, contract):
        ran_on[name] = threading.current_thread().name
        return check(self, name, sample, contract)

    monkeypatch.setattr(SuiteRunner, "check", recorded)
    settings = _settings(campaign, tmp_path / "good")
    spill, facts = _spills(tmp_path / "good")
    loader = SourceLoader(settings, tmp_path / "good" / "docs", tmp_path / "good" / "failed", spill, facts,
                          StageMeter(), {}, {}, 700)
    for name, opener in file_sources(settings).items():
        loader.load(name, opener)
    loader.finish()
    assert set(ran_on) == set(loader.suites) == {"roster", "tests", "vaccinations"}
    assert all(thread.startswith("suites") for thread in ran_on.values()), ran_on
    assert all(suite.rows_checked > 0 for suite in loader.suites.values())
    assert loader.timings["validate_expectations"] > 0 and "validate_expectations_wait" in loader.timings
    assert list((tmp_path / "good" / "docs").rglob("validations/tests_contract/**/*.html"))

    # The roster's phone column holds a site's code: every row parses, no phone is a phone.
    roster = pl.read_csv(campaign / "roster.csv", infer_schema=False)
    wrong = tmp_path / "roster.csv"
    roster.with_columns(pl.lit("GD-0755-01").alias(ROSTER.column("phone").zh)).write_csv(wrong)
    bad = load_settings(campaign / "campaign.toml", roster=str(wrong), out=str(tmp_path / "bad" / "out"),
                        db=str(tmp_path / "bad" / "gridsweep.duckdb"))
    spill, facts = _spills(tmp_path / "bad")
    loader = SourceLoader(bad, tmp_path / "bad" / "docs", tmp_path / "bad" / "failed", spill, facts,
                          StageMeter(), {}, {}, 100)
    sources = file_sources(bad)
    loader.load("roster", sources["roster"])  # its suite goes on beside the tests' load
    yielded: list[int] = []
    with pytest.raises(InputError) as err:
        loader.load("tests", _slowly(sources["tests"], yielded, 0.5))
    assert err.value.path == str(wrong) and err.value.column == ROSTER.column("phone").zh
    assert 0 < len(yielded) < 10  # of the tests' 20-odd slices of 100 rows
    assert list((tmp_path / "bad" / "failed").rglob("index.html"))


def test_a_refused_file_is_raised_in_the_flow_with_its_file_and_column(campaign, tmp_path):
    settings = _settings(campaign, tmp_path)
    bad = tmp_path / "tests.csv"
    bad.write_text("采样编号,手机号码\nT1,138\n", encoding="utf-8")
    spill, facts = _spills(tmp_path)
    with LoadingProcess(settings, tmp_path / "docs", tmp_path / "failed", spill, facts,
                        700) as loading:
        loading.load("roster", file_sources(settings)["roster"], {}, {})
        with pytest.raises(InputError) as err:
            loading.load("tests", partial(open_table, bad, TESTS), {}, {})
    assert err.value.path == str(bad) and "tests.csv" in str(err.value) and "姓名" in str(err.value)
    assert multiprocessing.active_children() == []
    # What was loaded before the refused file is on disk for the flow to clean up with its folders.
    assert list(facts.files) == ["roster"]


def test_an_input_error_pickles_with_its_parts():
    err = InputError("/data/tests.csv", "12 of 40 rows fail the check", column="身份证号")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is InputError and str(back) == str(err)
    assert (back.path, back.message, back.column) == ("/data/tests.csv", "12 of 40 rows fail the check", "身份证号")


def test_a_loading_process_that_dies_is_an_error_that_says_so(campaign, tmp_path):
    settings = _settings(campaign, tmp_path)
    spill, facts = _spills(tmp_path)
    with LoadingProcess(settings, tmp_path / "docs", tmp_path / "failed", spill, facts,
                        700) as loading:
        with pytest.raises(RuntimeError, match="the process loading roster ended before it was done"):
            loading.load("roster", partial(os._exit, 9), {}, {})  # as the kernel's OOM killer would end it
    assert multiprocessing.active_children() == []


def test_a_loading_process_that_cannot_start_says_why(campaign, tmp_path):
    """Another program holding the state database (a DuckDB file takes one writer): the child cannot read the
    last run when it starts, and the flow is told that, not that the child ended (as if killed)."""
    import subprocess
    import sys

    settings = _settings(campaign, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "c.execute('CREATE TABLE t (x INTEGER)'); print('held', flush=True); time.sleep(120)",
         str(settings.duckdb.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        spill, facts = _spills(tmp_path)
        with LoadingProcess(settings, tmp_path / "docs", tmp_path / "failed", spill, facts, 700) as loading:
            with pytest.raises(RuntimeError, match="the loading process could not start: IOException: .*lock"):
                loading.load("roster", file_sources(settings)["roster"], {}, {})
    finally:
        holder.kill()
        holder.wait()
    assert multiprocessing.active_children() == []


def test_the_loading_child_keeps_freed_pages_for_its_next_slices_and_the_flow_keeps_its_own(campaign, tmp_path):
    """The allocator setting is in the loading child's environment (read when its allocator starts), not left in
    the flow's, whose later programs keep the environment they were given."""
    given = os.environ.get(ALLOCATOR_VARIABLE)  # polars' own defaults, put there when it was imported
    settings = _settings(campaign, tmp_path)
    spill, facts = _spills(tmp_path)
    with LoadingProcess(settings, tmp_path / "docs", tmp_path / "failed", spill, facts,
                        700) as loading:
        in_child = loading._pool.submit(os.getenv, ALLOCATOR_VARIABLE).result()
    # The child's polars puts its defaults first again; the allocator takes the last value of each option.
    assert in_child.endswith("," + LOADING_ALLOCATOR)
    assert os.getenv(ALLOCATOR_VARIABLE) == given and LOADING_ALLOCATOR not in (given or "")
