"""Who tested here but is not on the roster: placed by building, or by a site named after a community."""

from datetime import datetime

import polars as pl

from transforms.roster_gaps import unregistered

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
    links = pl.DataFrame(schema={"record_kind": pl.String, "record_id": pl.String})
    out = unregistered(tests, links, roster, SINCE, AS_OF)
    placed = dict(zip(out["record_id"].to_list(), zip(out["street"].to_list(), out["community"].to_list(),
                                                       strict=True), strict=True))
    # 荔林社区 is in two streets: which one is meant cannot be told, so nobody's list gets it.
    assert placed == {"T1": ("甲街道", "科技园社区"), "T2": ("甲街道", "科技园北社区")}
    assert out.height == 2


def test_a_building_shared_evenly_by_two_grids_goes_to_the_same_grid_whatever_the_roster_order():
    """Its residents' grids are counted per building; on a tie the first grid by name takes it, never the grid
    that happens to come first out of the counting. The roster may be a scan of the roster on disk."""
    roster = pl.DataFrame({
        "street": ["甲街道"] * 5, "community": ["荔林社区"] * 5,
        "grid_id": ["G2", "G1", "G2", "G1", "G3"], "grid_worker": ["B", "A", "B", "A", "C"],
        "addr_block": ["b1", "b1", "b1", "b1", "b1"],
    })
    tests = _tests(["别处采样点"]).with_columns(pl.lit("b1").alias("addr_block"))
    links = pl.DataFrame(schema={"record_kind": pl.String, "record_id": pl.String})
    for seed in range(8):
        shuffled = roster.sample(fraction=1.0, shuffle=True, seed=seed)
        out = unregistered(tests, links, shuffled.lazy() if seed % 2 else shuffled, SINCE, AS_OF)
        assert out.select("grid_id", "grid_worker").rows() == [("G1", "A")], seed


def test_roster_corrections_pair_rows_that_share_an_id_or_a_person_and_nothing_else():
    from transforms.roster_gaps import roster_corrections

    d = datetime(1980, 1, 1).date()
    status = pl.DataFrame({
        "street": ["甲街道"] * 6, "community": ["荔林社区"] * 6, "grid_id": ["G1"] * 6, "grid_worker": ["A"] * 6,
        "resident_id": ["R1", "R2", "R3", "R4", "R5", "R6"], "name": ["张三", "张山", "李四", "李四", "王五", "赵六"],
        "address": ["地址1"] * 6,
        "wrong_number": [False, False, False, False, False, True],
        "id_norm": ["110101198001010011", "110101198001010011", None, None, "110101198001010022", None],
        "name_py": ["zhangsan", "zhangshan", "lisi", "lisi", "wangwu", "lisi"],
        "birth": [d, d, d, d, d, None],
        "addr_canon": ["a1", "a1", "a2", "a2", "a2", "a2"],
    })
    out = roster_corrections(status)
    pairs = set(zip(out["resident_id"], out["other_resident_id"].fill_null("-"), strict=True))
    # R1/R2 share an ID, R3/R4 a name reading, birth and flat; R6's number is wrong; R5 and the rest are fine.
    assert pairs == {("R1", "R2"), ("R2", "R1"), ("R3", "R4"), ("R4", "R3"), ("R6", "-")}
