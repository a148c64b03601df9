"""Learning from the workers: verify rows settled on returned workbooks (edited with openpyxl, not the
library that wrote them) become confirmed or rejected pairs that the next refresh obeys."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from helpers import matches as read_matches
from openpyxl import load_workbook

from flows.cli import main as cli
from flows.generate import write_synthetic
from flows.settings import load_settings
from transforms.contract import LIST_ZH, VERDICT_OTHER, VERDICT_SAME
from transforms.feedback import REJECTED, apply_confirmations, verdicts_from_sheet
from transforms.synthetic import generate

pytestmark = pytest.mark.slow


def test_verdicts_from_a_resorted_sheet_with_blank_and_odd_rows():
    sheet = pl.DataFrame({
        "序号": ["2", "1", "3", "4"],
        "人员编号": ["R2", "R1", "R3", " R4 "],
        "候选记录编号": ["test:T2", "vaccination:V1", "test:T3", "test:T4"],
        "核实结论": [VERDICT_OTHER, VERDICT_SAME, "", "不清楚"],
    })
    v = verdicts_from_sheet(sheet, "a.xlsx")
    assert v.select("record_kind", "record_id", "resident_id", "verdict").rows() == [
        ("test", "T2", "R2", "rejected"), ("vaccination", "V1", "R1", "confirmed")]
    assert verdicts_from_sheet(sheet.drop("核实结论"), "b.xlsx").height == 0


def test_a_confirmed_pair_replaces_the_records_decision():
    links = pl.DataFrame({
        "record_kind": ["test", "test"], "record_id": ["T1", "T2"], "resident_id": ["R9", "R2"],
        "method": ["fuzzy:phone", "id_exact"], "score": [7.0, 20.0], "decision": ["possible", "match"],
        "explanation": ["", ""],
    })
    feedback = pl.DataFrame({"record_kind": ["test", "test"], "record_id": ["T1", "T404"],
                             "resident_id": ["R1", "R1"], "verdict": ["confirmed", "confirmed"]})
    records = pl.DataFrame({"record_kind": ["test", "test"], "record_id": ["T1", "T2"]})
    out = apply_confirmations(links, feedback, records).sort("record_id")
    assert out.select("record_id", "resident_id", "decision", "method").rows() == [
        ("T1", "R1", "match", "worker_confirmed"), ("T2", "R2", "match", "id_exact")]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("feedback")
    write_synthetic(generate(3000, seed=5), data)
    return data


def _fill_verdicts(book: Path, verdicts: dict[str, str]) -> int:
    wb = load_workbook(book)
    ws = wb[LIST_ZH["verify"]]
    header = [c.value for c in ws[1]]
    rid, answer = header.index("人员编号"), header.index("核实结论")
    filled = 0
    for row in ws.iter_rows(min_row=2):
        if row[rid].value in verdicts:
            row[answer].value = verdicts[row[rid].value]
            filled += 1
    wb.save(book)
    return filled


def test_worker_verdicts_change_the_next_refresh(campaign, prefect_server, tmp_path):
    from flows.refresh import refresh

    settings = load_settings(campaign / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "g.duckdb"))
    refresh(settings)
    calls = pl.read_csv(settings.out / "call_list.csv", infer_schema=False)
    verify = calls.filter(pl.col("list") == "verify").unique("resident_id", keep="first", maintain_order=True)
    assert verify.height >= 2, "the sample should leave something to verify"
    yes, no = verify.row(0, named=True), verify.row(1, named=True)
    verdicts = {yes["resident_id"]: VERDICT_SAME, no["resident_id"]: VERDICT_OTHER}
    returned = []
    for book in (settings.out / "sheets").rglob("*.xlsx"):
        target = tmp_path / "returned" / book.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(book.read_bytes())
        if _fill_verdicts(target, verdicts):
            returned.append(target)
        else:
            target.unlink()
    assert returned
    assert cli(["feedback", "--config", str(campaign / "campaign.toml"), "--db", str(settings.duckdb.path),
                *map(str, returned)]) == 0

    refresh(settings)
    after = pl.read_csv(settings.out / "call_list.csv", infer_schema=False)
    matches = read_matches(settings.out)
    kind, record = yes["candidate_record"].split(":", 1)
    confirmed = matches.filter((pl.col("record_kind") == kind) & (pl.col("record_id") == record))
    assert confirmed.select("resident_id", "decision", "method").row(0) == (
        yes["resident_id"], "match", "worker_confirmed")
    # The confirmed resident no longer waits on that question.
    assert after.filter((pl.col("resident_id") == yes["resident_id"])
                        & (pl.col("candidate_record") == yes["candidate_record"])).height == 0
    # The rejected record is never again proposed for that resident.
    kind, record = no["candidate_record"].split(":", 1)
    assert matches.filter((pl.col("record_id") == record) & (pl.col("resident_id") == no["resident_id"])).height == 0
    assert after.filter((pl.col("resident_id") == no["resident_id"])
                        & (pl.col("candidate_record") == no["candidate_record"])).height == 0
    run = json.loads((settings.out / "run.json").read_text(encoding="utf-8"))
    assert run["linking"]["worker_feedback"]["confirmed"] == 1
    assert run["linking"]["worker_feedback"][REJECTED] == 1
