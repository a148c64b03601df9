"""The places kept between refreshes, carried on by the link's change, are the places a refresh placing every
record with no decision would find, in the list's order."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from helpers import fact_part, run_parts

from flows.kept_links import LoneChange, LoneTests
from flows.kept_unregistered import KeptUnregistered, places_key
from flows.lone_facts import KeptLoneFacts
from transforms.roster_gaps import RosterPlaces
from transforms.unregistered import in_list_order, place_unregistered

# Ten of the fifty buildings are on the roster; the site names one community.
PLACES = RosterPlaces(
    pl.DataFrame({"addr_block": [f"B{i}" for i in range(10)], "street": ["甲街道"] * 10,
                  "community": ["荔林社区"] * 5 + ["前海社区"] * 5, "grid_id": [f"G{i}" for i in range(10)],
                  "grid_worker": [f"员{i}" for i in range(10)]}),
    pl.DataFrame({"street": ["甲街道", "甲街道", "甲街道"], "community": ["荔林社区", "前海社区", "科技园社区"]}))


def _ids(numbers) -> pl.DataFrame:
    return pl.DataFrame({"record_id": [f"{i:06d}" for i in numbers]}, schema={"record_id": pl.String})


def _lone(folder: Path, name: str, numbers, change: LoneChange | None = None) -> LoneTests:
    folder.mkdir(exist_ok=True)
    _ids(numbers).write_parquet(folder / name)
    return LoneTests(folder / name, change)


def _expected(parts: list[Path], numbers, places: RosterPlaces = PLACES) -> pl.DataFrame:
    facts = pl.scan_parquet(parts).join(_ids(numbers).lazy(), on="record_id", how="semi").collect()
    return in_list_order(place_unregistered(facts, places))


def test_the_places_carried_on_are_those_found_again(tmp_path: Path) -> None:
    loaded, links, state = tmp_path / "loaded", tmp_path / "links", tmp_path / "state"
    loaded.mkdir()
    source = [fact_part(loaded, "facts-00000.parquet", 0, 600)]
    parts = run_parts(source, tmp_path / "run1")
    first = list(range(0, 600, 2))
    kept = KeptUnregistered(state / "places", places_key("roster-1"))
    got = kept.placed(_lone(links, "lone-1.parquet", first), KeptLoneFacts(state / "facts", parts), lambda: PLACES)
    assert got.equals(_expected(parts, first)) and 0 < got.height < len(first)
    assert kept.figures == {"carried_on": False, "kept": 0, "placed_now": got.height}
    assert got["id_masked"].str.contains("*", literal=True).any() and "id_clean" not in got.columns

    # Two hours later: 100 rows added, the even ones with no decision; 0-98 (even) linked again, 3 and 5
    # (linked before) and 4 now without one; 2-98 have one.
    source.append(fact_part(loaded, "facts-00001.parquet", 600, 100))
    parts = run_parts(source, tmp_path / "run2")
    came = [3, 4, 5, *range(600, 700, 2)]
    now = sorted({*first, *came} - set(range(0, 100, 2)) | {4})
    change = LoneChange("lone-1.parquet", _ids(range(0, 100, 2)), _ids(came))
    kept = KeptUnregistered(state / "places", places_key("roster-1"))
    got = kept.placed(_lone(links, "lone-2.parquet", now, change), KeptLoneFacts(state / "facts", parts),
                      lambda: PLACES)
    assert got.equals(_expected(parts, now))
    assert kept.figures["carried_on"] and kept.figures["placed_now"] == _expected(parts, came).height
    assert kept.figures["kept"] + kept.figures["placed_now"] == got.height
    assert "000002" not in got["record_id"].to_list() and "000004" in got["record_id"].to_list()


def test_places_are_found_again_when_the_roster_or_the_link_did_not_carry_them_on(tmp_path: Path) -> None:
    loaded, links, state = tmp_path / "loaded", tmp_path / "links", tmp_path / "state"
    loaded.mkdir()
    parts = run_parts([fact_part(loaded, "facts-00000.parquet", 0, 300)], tmp_path / "run1")
    lone = list(range(0, 300, 3))
    KeptUnregistered(state / "places", places_key("roster-1")).placed(
        _lone(links, "lone-1.parquet", lone), KeptLoneFacts(state / "facts", parts), lambda: PLACES)
    later = [i for i in lone if i != 3]
    # A change made from another copy's records (a refresh that died after its link), then a new roster
    # whose buildings are fewer.
    fewer = RosterPlaces(PLACES.buildings.head(4), PLACES.communities)
    for n, (since, roster, places) in enumerate((("lone-0.parquet", "roster-1", PLACES),
                                                 ("lone-2.parquet", "roster-2", fewer)), 2):
        change = LoneChange(since, _ids([3]), _ids([]))
        kept = KeptUnregistered(state / "places", places_key(roster))
        got = kept.placed(_lone(links, f"lone-{n}.parquet", later, change),
                          KeptLoneFacts(state / "facts", parts), lambda places=places: places)
        assert got.equals(_expected(parts, later, places)), since
        assert not kept.figures["carried_on"]
    assert not got.equals(_expected(parts, later))
