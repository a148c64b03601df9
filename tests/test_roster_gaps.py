"""Who tested here but is not on the roster: placed by building, or by a site named after a community."""

from datetime import datetime

import polars as pl

from transforms.roster_gaps import roster_places
from transforms.unregistered import unregistered

SINCE, AS_OF = datetime(2022, 5, 19), datetime(2022, 5, 20, 18)


def _tests(sites: list[str]) -> pl.DataFrame:
    n = len(sites)
    return pl.DataFrame({
        "record_id": [f"T{i}" for i in range(n)], "name": ["张三"] * n, "phone": ["13800000000"] * n,
        "id_clean": [None] * n, "address": ["外地某路1号"] * n, "site": sites,
        "sampled_at": [datetime(2022, 5, 20, 9)] * n, "addr_block": [None] * n,
    }, schema_overrides={"id_clean": pl.String, "addr_block": pl.String})


def test_a_site_names_its_community_only_when_the_name_is_in_one_street():
    roster = pl.DataFrame({
        "street": ["甲街道", "乙街道", "甲街道", "甲街道"],
        "community": ["荔林社区", "荔林社区", "科技园社区", "科技园北社区"],
        "grid_id": ["G1", "G2", "G3", "G4"], "grid_worker": ["A", "B", "C", "D"],
        "addr_block": ["b1", "b2", "b3", "b4"],
    })
    tests = _tests(["荔林社区采样点", "科技园社区便民点", "科技园北社区采样屋", "别处采样点"])
    out = unregistered(tests, roster_places(roster), SINCE, AS_OF)
    placed = dict(zip(out["record_id"].to_list(), zip(out["street"].to_list(), out["community"].to_list(),
                                                       strict=True), strict=True))
    # 荔林社区 is in two streets: which one is meant cannot be told, so nobody's list gets it.
    assert placed == {"T1": ("甲街道", "科技园社区"), "T2": ("甲街道", "科技园北社区")}
    assert out.height == 2


def test_only_the_rounds_tests_are_listed():
    roster = pl.DataFrame({"street": ["甲街道"], "community": ["科技园社区"], "grid_id": ["G3"], "grid_worker": ["C"],
                           "addr_block": ["b3"]})
    tests = _tests(["科技园社区采样点"] * 3).with_columns(
        pl.Series("sampled_at", [datetime(2022, 5, 18, 23), SINCE, datetime(2022, 5, 20, 18, 1)]))
    out = unregistered(tests, roster_places(roster), SINCE, AS_OF)
    assert out["record_id"].to_list() == ["T1"]  # the round's; one the day before and one after as_of are not


def test_a_building_shared_evenly_by_two_grids_goes_to_the_same_grid_whatever_the_roster_order():
    """Its residents' grids are counted per building; on a tie the first grid by name takes it, never the grid
    that happens to come first out of the counting. The roster may be a scan of the roster on disk."""
    roster = pl.DataFrame({
        "street": ["甲街道"] * 5, "community": ["荔林社区"] * 5,
        "grid_id": ["G2", "G1", "G2", "G1", "G3"], "grid_worker": ["B", "A", "B", "A", "C"],
        "addr_block": ["b1", "b1", "b1", "b1", "b1"],
    })
    tests = _tests(["别处采样点"]).with_columns(pl.lit("b1").alias("addr_block"))
    for seed in range(8):
        shuffled = roster.sample(fraction=1.0, shuffle=True, seed=seed)
        out = unregistered(tests, roster_places(shuffled.lazy() if seed % 2 else shuffled), SINCE, AS_OF)
        assert out.select("grid_id", "grid_worker").rows() == [("G1", "A")], seed


_D = datetime(1980, 1, 1).date()
STATUS = pl.DataFrame({
    "street": ["甲街道"] * 6, "community": ["荔林社区"] * 6, "grid_id": ["G1"] * 6, "grid_worker": ["A"] * 6,
    "resident_id": ["R1", "R2", "R3", "R4", "R5", "R6"], "name": ["张三", "张山", "李四", "李四", "王五", "赵六"],
    "address": ["地址1"] * 6,
    "wrong_number": [False, False, False, False, False, True],
    "id_norm": ["110101198001010011", "110101198001010011", None, None, "110101198001010022", None],
    "name_py": ["zhangsan", "zhangshan", "lisi", "lisi", "wangwu", "lisi"],
    "birth": [_D, _D, _D, _D, _D, None],
    "addr_canon": ["a1", "a1", "a2", "a2", "a2", "a2"],
})


def test_roster_corrections_pair_rows_that_share_an_id_or_a_person_and_nothing_else():
    from transforms.roster_gaps import roster_corrections

    out = roster_corrections(STATUS)
    pairs = set(zip(out["resident_id"], out["other_resident_id"].fill_null("-"), strict=True))
    # R1/R2 share an ID, R3/R4 a name reading, birth and flat; R6's number is wrong; R5 and the rest are fine.
    assert pairs == {("R1", "R2"), ("R2", "R1"), ("R3", "R4"), ("R4", "R3"), ("R6", "-")}


def test_the_roster_s_duplicates_and_places_are_kept_while_its_parts_are_the_same_files(tmp_path):
    """A refresh that took the roster back from the last load (the same files, hard-linked) takes the
    duplicates, the buildings' grids and the grids' workers back too; a roster written again is searched
    again."""
    from flows.roster_derived import RosterDerived
    from transforms.roster_gaps import duplicate_registrations

    roster = STATUS.with_columns(pl.Series("addr_block", ["b1", "b1", "b2", "b2", "b2", None]),
                                 pl.Series("grid_id", ["G1", "G1", "G1", "G2", "G2", "G2"]),
                                 pl.Series("grid_worker", ["A", "A", "A", "B", "B", "C"]))
    workers = [("甲街道", "荔林社区", "G1", "A"), ("甲街道", "荔林社区", "G2", "B"), ("甲街道", "荔林社区", "G2", "C")]
    part = tmp_path / "roster-00000.parquet"
    roster.write_parquet(part)
    kept = tmp_path / "derived"
    first = RosterDerived(kept, [part], pl.scan_parquet(part))
    assert not first.reused
    assert first.duplicates().equals(duplicate_registrations(roster))
    assert first.places().buildings.sort("addr_block").equals(roster_places(roster).buildings.sort("addr_block"))
    assert sorted(first.grid_workers().iter_rows()) == workers
    linked = tmp_path / "run" / part.name  # the next refresh's hard link of the kept part
    linked.parent.mkdir()
    linked.hardlink_to(part)
    # What is kept is read, not found again: a roster scan that cannot be read proves it.
    again = RosterDerived(kept, [linked], pl.scan_parquet(tmp_path / "missing.parquet"))
    assert again.reused
    assert again.duplicates().equals(first.duplicates())
    assert again.places().communities.equals(first.places().communities)
    assert again.grid_workers().equals(first.grid_workers())
    # The roster read again (new files, two rows): found again, the old entry dropped.
    roster.head(2).write_parquet(tmp_path / "new.parquet")
    fresh = RosterDerived(kept, [tmp_path / "new.parquet"], pl.scan_parquet(tmp_path / "new.parquet"))
    assert not fresh.reused
    assert fresh.duplicates().equals(duplicate_registrations(roster.head(2)))
    assert [p.name for p in kept.iterdir()] == [fresh.here.name]
