"""Which code each kept result is keyed by (flows.code_fingerprint). A kept result made by other code is
thrown away, so a key that covers too little reuses stale results, and one that covers too much makes a
city's next refresh redo minutes of work after an unrelated fix."""

from __future__ import annotations

from flows.kept_rules import rules_code_files
from flows.publish import layout_code_files
from flows.refresh import linking_code_files


def _names(paths) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in paths}


def test_the_rulings_are_keyed_by_the_rules_code_not_the_flow_the_books_or_the_report():
    # A change to the flow or the books once ruled every resident again: three minutes and more at 20M.
    files = _names(rules_code_files())
    assert {"flows/ruling.py", "flows/kept_rules.py", "transforms/rule_parts.py", "transforms/rules.py",
            "transforms/evidence.py", "transforms/outcomes.py", "transforms/coverage.py"} <= files
    assert not files & {"flows/refresh.py", "flows/publish.py", "transforms/sheets.py", "transforms/report.py",
                        "transforms/linking.py", "transforms/normalise.py"}


def test_the_layout_is_keyed_by_the_writers_and_the_sheets_not_the_linking_code():
    files = _names(layout_code_files())
    assert {"flows/workbooks.py", "flows/xlsx.py", "transforms/sheets.py", "transforms/print_sheet.py"} <= files
    assert not files & {"transforms/linking.py", "transforms/decision.py", "transforms/comparison.py",
                        "transforms/rules.py"}


def test_the_decisions_are_keyed_by_the_linking_code_not_the_sheets_or_the_rules():
    files = _names(linking_code_files())
    assert {"transforms/linking.py", "transforms/pair_decisions.py", "transforms/decision.py",
            "transforms/comparison.py", "transforms/feedback.py"} <= files
    assert not files & {"transforms/sheets.py", "transforms/rules.py", "transforms/rule_parts.py"}
