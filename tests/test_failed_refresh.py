"""A refresh that failed after it had linked and ruled (a full disk while writing its books), and the refresh
after it: it takes the failed one's rulings instead of ruling the city again (flows.kept_rules), and
publishes what it would have published had the failed one never run."""

from __future__ import annotations

import shutil

import pytest
from helpers import sorted_csv

from flows.generate import write_synthetic
from flows.readers import read_table
from flows.settings import load_settings
from transforms.contract import TESTS
from transforms.synthetic import generate

pytestmark = pytest.mark.slow


def _growing_export(tmp_path, seed: int):
    """A generated campaign's tests, a twentieth of them a step, and run(rows, state): a refresh of the
    export's first rows in a state folder of its own (each state's export grown at its end, as a two-hourly
    download is)."""
    data = tmp_path / "data"
    write_synthetic(generate(800, seed=seed), data)
    tests = read_table(data / "tests.csv", TESTS).frame.drop("_line")

    def run(rows: int, state: str):
        from flows.refresh import refresh

        export = tmp_path / state / "tests_export.csv"
        export.parent.mkdir(exist_ok=True)
        tests.head(rows).write_csv(export)
        return refresh(load_settings(data / "campaign.toml", tests=str(export), out=str(tmp_path / state / "out"),
                                     db=str(tmp_path / state / "g.duckdb")))

    return tests, tests.height // 20, run


def _same_lists(tmp_path, state: str, other: str) -> None:
    for name in ("call_list.csv", "coverage.csv", "escalation.csv", "unregistered.csv"):
        assert sorted_csv(tmp_path / state / "out" / name).equals(sorted_csv(tmp_path / other / "out" / name)), name


@pytest.mark.parametrize("failed_ruled_all", [False, True])
def test_a_refresh_after_one_that_failed_to_publish_takes_its_rulings_and_rules_again_whom_it_ruled(
        tmp_path, prefect_server, monkeypatch, failed_ruled_all):
    """A refresh that ruled and then failed while writing (a full disk) is never recorded, but its decisions and
    rulings are kept: the next refresh rules again only the residents whose inputs changed since the last
    recorded refresh (those the failed one ruled among them; when it ruled everyone, the lists are compared
    whole), and publishes what it would have published had the failed refresh never run (flows.kept_rules)."""
    import errno

    import flows.refresh

    tests, step, run = _growing_export(tmp_path, 47)
    first = tests.height - 2 * step
    run(first, "failed")
    real = flows.refresh.publish_outputs

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(flows.refresh, "publish_outputs", full_disk)
    if failed_ruled_all:  # no rulings kept: the failed refresh rules everyone
        shutil.rmtree(tmp_path / "failed" / "kept_rules")
    with pytest.raises(OSError):
        run(first + step, "failed")
    monkeypatch.setattr(flows.refresh, "publish_outputs", real)
    after = run(first + 2 * step, "failed")
    assert after.rules["ruled_from_kept"], after.rules["why_all"]
    # Those whose only news is a re-test, tested this round already, are left as they were (flows.ruling).
    assert 0 < after.rules["residents_ruled"] + after.rules["tested_before_not_ruled"]
    assert after.rules["residents_ruled"] < after.rules["residents"]

    run(first, "direct")  # the same refreshes without the failed one between them
    direct = run(first + 2 * step, "direct")
    assert direct.rules["ruled_from_kept"]
    assert after.changes == direct.changes and after.coverage == direct.coverage
    _same_lists(tmp_path, "failed", "direct")


def test_a_refresh_after_ones_killed_between_link_and_rules_rules_only_whom_they_changed(
        tmp_path, prefect_server, monkeypatch):
    """Refreshes that died after their link had carried the decisions' copy on, before their rules were kept
    (the machine out of memory while ruling): the next one takes the rulings of the last refresh recorded,
    two copies back, and rules again only the residents whose decisions changed since (kept with the copy,
    flows.kept_links), with the same outputs as refreshes that never died."""
    import flows.kept_links
    import flows.refresh
    from flows.kept_meta import read_meta

    tests, step, run = _growing_export(tmp_path, 53)
    first = tests.height - 6 * step
    run(first, "killed")
    real = flows.refresh.apply_rules

    def killed(*args, **kwargs):
        raise MemoryError("killed while ruling")

    monkeypatch.setattr(flows.refresh, "apply_rules", killed)
    for n in (1, 2):
        with pytest.raises(MemoryError):
            run(first + n * step, "killed")
    monkeypatch.setattr(flows.refresh, "apply_rules", real)
    kept_links = tmp_path / "killed" / "kept_links"
    assert len(read_meta(kept_links)["steps"]) == 2  # the recorded refresh's copy two steps back
    after = run(first + 3 * step, "killed")
    assert after.rules["ruled_from_kept"], after.rules["why_all"]
    assert after.rules["kept_copies_behind"] == 2
    # Those whose only news is a re-test, tested this round already, are left as they were (flows.ruling).
    assert 0 < after.rules["residents_ruled"] + after.rules["tested_before_not_ruled"]
    assert after.rules["residents_ruled"] < after.rules["residents"]

    run(first, "direct")  # the same refresh without the two that died between
    direct = run(first + 3 * step, "direct")
    assert direct.rules["ruled_from_kept"] and direct.rules["kept_copies_behind"] == 0
    # Whom the dead refreshes changed is ruled again besides whom this one changed: the residents of the three
    # steps' records, as the refresh that linked the three at once ruled.
    assert after.rules["residents_ruled"] == direct.rules["residents_ruled"] > 0
    assert after.changes == direct.changes and after.coverage == direct.coverage
    _same_lists(tmp_path, "killed", "direct")

    # Only the last MAX_STEPS refreshes' changes are kept: rulings older than that are not taken (at one,
    # what a refresh hands its rules is the step it made itself, so rulings one copy back no longer hold).
    monkeypatch.setattr(flows.kept_links, "MAX_STEPS", 1)
    monkeypatch.setattr(flows.refresh, "apply_rules", killed)
    with pytest.raises(MemoryError):
        run(first + 4 * step, "killed")
    monkeypatch.setattr(flows.refresh, "apply_rules", real)
    assert len(list(kept_links.glob("touched-*.parquet"))) == 1
    late = run(first + 5 * step, "killed")
    assert late.rules["ruled_from_kept"] is False
    assert late.rules["why_all"] == "the decisions were not merged from the copy they were ruled with"
