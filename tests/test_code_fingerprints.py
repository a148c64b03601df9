"""Which code each kept result is keyed by (flows.code_fingerprint). A kept result made by other code is
thrown away, so a key that covers too little reuses stale results, and one that covers too much makes a
city's next refresh redo minutes of work after an unrelated fix."""

from __future__ import annotations

from pathlib import Path

from flows.kept_rules import rules_code_files
from flows.kept_unregistered import places_code_files
from flows.publish import layout_code_files
from flows.refresh import linking_code_files

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


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


def test_the_unregistered_places_are_keyed_by_the_placing_code_and_the_rules_are_not():
    # Until the list had a module of its own the rules imported it: a change to how a record is placed
    # ruled every resident of a city again.
    places = _names(places_code_files())
    assert {"transforms/unregistered.py", "transforms/idcard.py", "transforms/roster_gaps.py"} <= places
    assert not places & {"flows/refresh.py", "transforms/rules.py", "transforms/linking.py", "transforms/sheets.py"}
    assert "transforms/unregistered.py" not in _names(rules_code_files())


def test_the_rosters_part_of_the_linking_key_is_kept_while_it_is_read_from_the_same_files(tmp_path, monkeypatch):
    import os

    import polars as pl

    import flows.refresh
    from flows.settings import load_settings

    # Only the settings are read (the roster part of the key is the frame below): the bundled campaign's.
    settings = load_settings(SAMPLES / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "state" / "g.duckdb"))
    (tmp_path / "state").mkdir()
    roster = pl.DataFrame({"resident_id": ["R1", "R2"], "name_py": ["zhang san", "li si"]})
    parts = [tmp_path / "part-0.parquet", tmp_path / "part-1.parquet"]
    roster[:1].write_parquet(parts[0])
    roster[1:].write_parquet(parts[1])

    first = flows.refresh.linking_fingerprint(roster, settings, parts)
    assert (tmp_path / "state" / "roster_rows" / "meta.json").exists()
    hashed = []
    real = flows.refresh._rows_summary
    monkeypatch.setattr(flows.refresh, "_rows_summary", lambda frame: hashed.append(1) or real(frame))
    assert flows.refresh.linking_fingerprint(roster, settings, parts) == first and not hashed  # kept
    assert flows.refresh.linking_fingerprint(roster, settings) == first and hashed  # as hashing gives
    hashed.clear()
    # Another file in a part's place (a roster read again) is hashed again, and its rows decide.
    changed = roster.with_columns(pl.Series("name_py", ["zhang san", "li shi"]))
    changed[1:].write_parquet(parts[1])
    os.utime(parts[1], ns=(1, 1))
    assert flows.refresh.linking_fingerprint(changed, settings, parts) != first and hashed


def test_a_fingerprint_follows_the_code_not_its_docstrings_comments_or_layout(tmp_path):
    # Sessions fix docstrings often; when the source text was hashed, each such fix in a keyed module made
    # a 20M city's next refresh redo that result (every resident ruled again, every source loaded again).
    from flows.code_fingerprint import code_fingerprint

    module = tmp_path / "rules_like.py"

    def fingerprint(text: str) -> str:
        module.write_text(text, encoding="utf-8")
        return code_fingerprint([module], ("polars",))

    base = fingerprint('"""Rules."""\n\nLIMIT = 3\n\n\ndef due(n):\n    """True when due."""\n    return n >= LIMIT\n')
    explained = fingerprint('"""The rules, explained anew."""\n\n# a comment\nLIMIT = 3\n\n\ndef due(n):\n'
                            '    """True when the resident is due, said better."""\n\n    return n >= LIMIT  # why\n')
    assert explained == base
    assert fingerprint('"""Rules."""\n\nLIMIT = 4\n\n\ndef due(n):\n    """True when due."""\n    return n >= LIMIT\n') != base
    assert fingerprint('"""Rules."""\n\nLIMIT = 3\n\n\ndef due(n):\n    """True when due."""\n    return n > LIMIT\n') != base
    # A text that is not a docstring is code: a SQL string, or a message, changes the fingerprint.
    assert fingerprint('"""Rules."""\n\nLIMIT = 3\nSQL = "SELECT 1"\n\n\ndef due(n):\n    return n >= LIMIT\n') != \
        fingerprint('"""Rules."""\n\nLIMIT = 3\nSQL = "SELECT 2"\n\n\ndef due(n):\n    return n >= LIMIT\n')
