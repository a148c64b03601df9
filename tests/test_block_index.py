"""The roster's blocking index (transforms.block_index): a small batch blocked against only the residents the
index finds gets the very pairs the whole roster gives, so a two-hour refresh decides as a full one does."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from helpers import _stages, blocked_candidates, records_table, roster
from test_linking import FATHER

from transforms.block_index import INDEXES, residents_met
from transforms.contract import ROSTER, TESTS
from transforms.linking import RULE_NAMES
from transforms.parsing import LINE, parse_rows
from transforms.synthetic import generate


def _parsed(frame: pl.DataFrame, contract) -> pl.DataFrame:
    raw = frame.select(pl.all().cast(pl.String)).with_columns(pl.int_range(2, frame.height + 2).cast(pl.Int64).alias(LINE))
    return parse_rows(raw, contract).rows


@pytest.fixture(scope="module")
def city() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A noisy city's roster, and a two-hour batch of its test records (a few hundred of them), with a roster
    ID typed wrong (only the roster's side fails the check, so its neighbours are the probes) and a record
    of that resident with the right ID, and a passport holder's record with the name typed differently."""
    made = generate(4000, seed=31)
    tests = made.tests.sample(400, seed=3)
    typo = FATHER[:14] + ("1" if FATHER[14] != "1" else "2") + FATHER[15:]
    people = pl.concat([_parsed(made.roster, ROSTER),
                        roster([{"resident_id": "R-TYPO", "name": "王建国", "id_number": typo},
                               {"resident_id": "R-PASS", "name": "史密斯", "id_type": "护照", "id_number": "E20480731"}])], how="diagonal_relaxed")
    records = pl.concat([_parsed(tests, TESTS),
                         records_table([{"record_id": "T-TYPO", "name": "王建国", "id_number": FATHER},
                                        {"record_id": "T-PASS", "name": "史蜜达", "id_type": "护照",
                                         "id_number": "E20480731"}])],
                        how="diagonal_relaxed")
    return people, records


def test_a_batch_blocked_against_the_residents_its_keys_meet_gets_the_whole_rosters_pairs(city):
    people, records = city
    whole = blocked_candidates(people, records)
    narrowed = blocked_candidates(people, records, narrow=True)
    assert narrowed == whole
    # every rule proposed pairs here, so none was checked by its absence
    assert set().union(*whole.values()) == set(RULE_NAMES)
    assert ("T-TYPO", "R-TYPO") in whole and "id_other" in whole[("T-PASS", "R-PASS")]
    # the exact stage's pairs too, from the unique IDs the batch's records have
    seen: dict = {}
    _, ((exact, _), _) = _stages(people, records, narrow=True, seen=seen)
    _, ((whole_exact, _), _) = _stages(people, records)
    assert exact.height > 100 and exact.sort("_li").equals(whole_exact.sort("_li"))
    # and it narrows: the joins read a small part of the roster
    assert 0 < len(seen["met"]) < people.height / 3 and 0 < seen["unique_met"] < people.height / 3


def test_each_rules_pairs_are_among_the_residents_its_own_indexes_meet(city):
    # Each rule's residents must be found by that rule's indexes alone: a resident another rule happens to
    # meet hides a missing index in the test above, not in a batch where no other rule meets them.
    people, records = city
    seen: dict = {}
    _stages(people, records, narrow=True, seen=seen)
    pairs = seen["whole"]
    assert {ix.rule for ix in INDEXES} == {*RULE_NAMES, "exact"}
    for bit, rule in enumerate(RULE_NAMES):
        wanted = set(pairs.filter((pl.col("rule_bits") // (1 << bit)) % 2 == 1)["_ri"].to_list())
        assert wanted, rule
        own = [ix.name for ix in INDEXES if ix.rule == rule]
        met = set(residents_met(seen["index"], seen["probes"].filter(pl.col("ix").is_in(own))).tolist())
        assert wanted <= met, rule
        assert len(met) < people.height / 3, rule


def test_an_index_hash_that_collides_only_adds_residents():
    # Short hashes of different keys may be equal: the search then returns both keys' residents, never fewer.
    from transforms.block_index import sorted_index

    pairs = pl.DataFrame({"h": pl.Series([9 << 32, 5 << 32 | 2, 7 << 32, 5 << 32 | 1, 2 << 32], dtype=pl.UInt64),
                          "v": pl.Series([13, 11, 12, 10, 14], dtype=pl.UInt32)})
    index = {ix.name: sorted_index(pairs.head(0)) for ix in INDEXES} | {"name": sorted_index(pairs)}
    assert index["name"].keys.tolist() == [2, 5, 5, 7, 9]
    probes = pl.DataFrame({"ix": ["name", "name", "name", "phone"],
                           "h": pl.Series([5 << 32 | 1, 9 << 32 | 3, 10 << 32, 5 << 32], dtype=pl.UInt64)})
    assert residents_met(index, probes).tolist() == [10, 11, 13]
    assert residents_met(index, probes.head(0)).dtype == np.uint32


def test_the_kept_index_is_read_back_as_written_and_only_under_its_key(tmp_path):
    from flows.block_index import KeptBlockIndex
    from transforms.block_index import sorted_index

    pairs = pl.DataFrame({"h": pl.Series([3 << 32, 1 << 32, 3 << 32], dtype=pl.UInt64),
                          "v": pl.Series([7, 8, 9], dtype=pl.UInt32)})
    index = {ix.name: sorted_index(pairs) for ix in INDEXES}
    kept = KeptBlockIndex(tmp_path / "block_index", "k1")
    assert kept.load() is None and not kept.exists()
    kept.save(index)
    back = kept.load()
    assert set(back) == set(index)
    for name, keys in index.items():
        assert all((getattr(back[name], part) == getattr(keys, part)).all() for part in ("keys", "values"))
    assert KeptBlockIndex(tmp_path / "block_index", "k2").load() is None
    # another key's index replaces it: one roster's index is kept at a time
    KeptBlockIndex(tmp_path / "block_index", "k2").save(index)
    assert kept.load() is None and [p.name for p in (tmp_path / "block_index").iterdir()] == ["k2"]
