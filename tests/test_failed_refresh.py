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


@pytest.mark.parametrize("failed_ruled_all", [False, True])
def test_a_refresh_after_one_that_failed_to_publish_takes_its_rulings_and_rules_again_whom_it_ruled(
        tmp_path, prefect_server, monkeypatch, failed_ruled_all):
    """A refresh that ruled and then failed while writing (a full disk) is never recorded, but its decisions and
    rulings are kept: the next refresh rules again only the residents whose inputs changed since the last
    recorded refresh (those the failed one ruled among them; when it ruled everyone, the lists are compared
    whole), and publishes what it would have published had the failed refresh never run (flows.kept_rules)."""
    import errno

    import flows.refresh
    from flows.refresh import refresh

    data = tmp_path / "data"
    write_synthetic(generate(800, seed=47), data)
    tests = read_table(data / "tests.csv", TESTS).frame.drop("_line")
    step = tests.height // 20

    def run(rows: int, state: str):
        export = tmp_path / state / "tests_export.csv"
        export.parent.mkdir(exist_ok=True)
        tests.head(rows).write_csv(export)
        return refresh(load_settings(data / "campaign.toml", tests=str(export), out=str(tmp_path / state / "out"),
                                     db=str(tmp_path / state / "g.duckdb")))

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
    assert 0 < after.rules["residents_ruled"] < after.rules["residents"]

    run(first, "direct")  # the same refreshes without the failed one between them
    direct = run(first + 2 * step, "direct")
    assert direct.rules["ruled_from_kept"]
    assert after.changes == direct.changes and after.coverage == direct.coverage
    for name in ("call_list.csv", "coverage.csv", "escalation.csv", "unregistered.csv"):
        assert sorted_csv(tmp_path / "failed" / "out" / name).equals(sorted_csv(tmp_path / "direct" / "out" / name)), name
