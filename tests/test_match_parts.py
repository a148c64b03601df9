"""flows.match_parts: a refresh's decisions cut into CSV parts a spreadsheet opens, each copy file's in order."""

from __future__ import annotations

import polars as pl

from flows.match_parts import MatchParts, plan_parts, scan_matches

COLUMNS = ["record_kind", "record_id", "resident_id", "decision"]


def _copy_file(path, kinds_ids: list[tuple[str, str]]):
    frame = pl.DataFrame({"record_kind": [k for k, _ in kinds_ids], "record_id": [i for _, i in kinds_ids],
                          "resident_id": [f"R{n}" if n % 5 else None for n in range(len(kinds_ids))],
                          "decision": ["match" if n % 3 else "possible" for n in range(len(kinds_ids))],
                          "explanation": ["证件号一致"] * len(kinds_ids)})
    frame.sort("record_kind", "record_id").write_parquet(path)
    return path, frame.height


def test_each_file_is_cut_in_order_and_a_digest_names_what_a_part_holds(tmp_path):
    a, b, c = (tmp_path / f"links-{x}.parquet" for x in "abc")
    parts = plan_parts([(a, 2500), (b, 0), (c, 700)], COLUMNS, 1000)
    assert [(p.rel, p.file, p.offset, p.rows) for p in parts] == [
        ("matches/01-0001.csv", a, 0, 1000), ("matches/01-0002.csv", a, 1000, 1000),
        ("matches/01-0003.csv", a, 2000, 500), ("matches/03-0001.csv", c, 0, 700)]
    assert len({p.digest for p in parts}) == 4
    # The same place in another file (a copy written whole again) is another part; other columns too.
    again = plan_parts([(tmp_path / "links-d.parquet", 2500)], COLUMNS, 1000)
    assert [p.rel for p in again] == [p.rel for p in parts[:3]] and not {p.digest for p in again} & {
        p.digest for p in parts}
    assert plan_parts([(a, 2500)], COLUMNS[:3], 1000)[0].digest != parts[0].digest
    # A copy with no decision at all: its header alone, in one part.
    empty = plan_parts([(a, 0)], COLUMNS, 1000)
    assert [(p.rel, p.rows) for p in empty] == [("matches/01-0001.csv", 0)]


def test_parts_the_last_output_lacks_are_written_aside_and_the_rest_can_be_written_here(tmp_path, monkeypatch):
    import flows.match_parts

    monkeypatch.setattr(flows.match_parts, "PART_ROWS", 300)
    city = _copy_file(tmp_path / "links-city.parquet", [("test", f"T{n:05d}") for n in range(700)]
                      + [("vaccination", f"V{n:05d}") for n in range(200)])
    later = _copy_file(tmp_path / "links-later.parquet", [("test", f"T{n:05d}") for n in range(900, 950)])
    out, staging = tmp_path / "out", tmp_path / "staging"
    (staging / "matches").mkdir(parents=True)
    held = {p.rel: p.digest for p in plan_parts([city], COLUMNS, 300)}  # the last output's: the city's parts
    parts = MatchParts([city, later], COLUMNS, out, "run2", held)
    assert [p.rel for p in parts.parts] == ["matches/01-0001.csv", "matches/01-0002.csv", "matches/01-0003.csv",
                                            "matches/02-0001.csv"]
    assert {p.name for p in (tmp_path / ".out.matches-run2").glob("*")} <= {"02-0001.csv"}  # begun aside
    laps: dict[str, float] = {}
    # The later file's part, from the writer; one of the city's as if found gone from the last output: here.
    parts.place(staging, [parts.parts[3], parts.parts[1]], laps)
    assert laps["write_matches_wait"] >= 0 and laps["matches_csv_aside"] >= 0
    got = {p.name: pl.read_csv(p, infer_schema=False) for p in sorted((staging / "matches").glob("*.csv"))}
    assert list(got) == ["01-0002.csv", "02-0001.csv"]
    whole = pl.read_parquet(city[0]).select(COLUMNS).cast(pl.String)
    assert got["01-0002.csv"].equals(whole.slice(300, 300))
    assert got["02-0001.csv"].equals(pl.read_parquet(later[0]).select(COLUMNS).cast(pl.String))
    assert (staging / "matches" / "02-0001.csv").read_bytes().startswith(b"\xef\xbb\xbfrecord_kind,")
    parts.stop()
    assert not (tmp_path / ".out.matches-run2").exists()
    assert scan_matches(staging).collect().height == 350  # every part, one after the other


def test_nothing_is_begun_when_the_last_output_holds_every_part(tmp_path):
    city = _copy_file(tmp_path / "links-city.parquet", [("test", f"T{n:05d}") for n in range(50)])
    held = {p.rel: p.digest for p in plan_parts([city], COLUMNS, 1_000_000)}
    parts = MatchParts([city], COLUMNS, tmp_path / "out", "run3", held)
    assert not list(tmp_path.glob(".out.matches-*"))
    laps: dict[str, float] = {}
    parts.place(tmp_path, [], laps)
    assert laps == {}
    parts.stop()
