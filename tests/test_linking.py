"""The linking traps from the field, each a small hand-made household, run through the real linker."""

from __future__ import annotations

import polars as pl
import pytest
from helpers import blocked_candidates, decision_for, link, records_table, roster

from transforms.idcard import check_digit


def make_id(region: str, birth: str, seq: str) -> str:
    body = f"{region}{birth}{seq}"
    return body + check_digit(body)


FATHER = make_id("440305", "19580304", "031")
SON = make_id("440305", "19880612", "017")
TWIN_A = make_id("440305", "20100101", "023")
TWIN_B = make_id("440305", "20100101", "045")
FAMILY_PHONE = "13800138000"


def family():
    return roster([
        {"resident_id": "R1", "name": "王建国", "id_number": FATHER, "phone": FAMILY_PHONE, "gender": "男"},
        {"resident_id": "R2", "name": "王小明", "id_number": SON, "phone": FAMILY_PHONE, "gender": "男"},
        {"resident_id": "R3", "name": "王欣怡", "id_number": TWIN_A, "phone": FAMILY_PHONE, "gender": "女"},
        {"resident_id": "R4", "name": "王欣悦", "id_number": TWIN_B, "phone": FAMILY_PHONE, "gender": "女"},
    ])


CASES = [
    # (what, record fields, expected resident, expected decision)
    ("exact ID and name", {"name": "王小明", "id_number": SON}, "R2", "match"),
    ("son on the family phone, no ID: never the father",
     {"name": "王小明", "phone": FAMILY_PHONE, "address": "科苑路一巷3号楼2单元502室"}, "R2", "match"),
    ("twin A by name on the shared phone", {"name": "王欣怡", "phone": FAMILY_PHONE}, "R3", "match"),
    ("twin B with her own ID", {"name": "王欣悦", "id_number": TWIN_B}, "R4", "match"),
    ("one-digit ID typo, name right", {"name": "王建国", "id_number": FATHER[:10] + "9" + FATHER[11:]}, "R1", "match"),
    ("two digits swapped", {"name": "王建国", "id_number": FATHER[:8] + FATHER[9] + FATHER[8] + FATHER[10:]}, "R1",
     "match"),
    ("homophone given name with the ID", {"name": "王晓明", "id_number": SON}, "R2", "match"),
    ("pinyin-only name with the ID", {"name": "WANG XIAOMING", "id_number": SON}, "R2", "match"),
    ("the father's ID on the son's record (a parent registered him)",
     {"name": "王小明", "id_number": FATHER, "phone": FAMILY_PHONE}, "R2", "match"),
    ("privacy-masked ID and phone, name right",
     {"name": "王建国", "id_number": FATHER[:6] + "*" * 8 + FATHER[-4:], "phone": "138****8000"}, "R1", "match"),
    ("one character left out, with the ID", {"name": "王明", "id_number": SON}, "R2", "match"),
    ("lower-case x and spaces", {"name": "王建国", "id_number": " " + FATHER[:6] + " " + FATHER[6:].lower()}, "R1",
     "match"),
]


@pytest.mark.parametrize(("what", "record", "resident", "decision"), CASES, ids=[c[0] for c in CASES])
def test_family_traps(what, record, resident, decision):
    links = link(family(), records_table([{"record_id": "T1", **record}]))
    assert decision_for(links, "T1") == (resident, decision), what


def test_the_household_and_masked_id_blocks_propose_their_pairs():
    """A relative's phone leads to the household (the son's own phone is another); a masked ID with both
    visible ends right to its holder, and one with another region or other last four not by that rule."""
    people = roster([
        {"resident_id": "R1", "name": "王建国", "id_number": FATHER, "phone": FAMILY_PHONE,
         "address": "科苑路一巷3号楼2单元502室"},
        {"resident_id": "R2", "name": "王小明", "id_number": SON, "phone": "13911112222",
         "address": "科苑路一巷3号楼2单元502室"},
    ])
    masked = FATHER[:6] + "*" * 8 + FATHER[-4:]
    other_tail = masked[:14] + ("0000" if FATHER[-4:] != "0000" else "1111")
    records = records_table([
        {"record_id": "T1", "name": "王小明", "phone": FAMILY_PHONE},
        {"record_id": "T2", "name": "王建国", "id_number": masked},
        {"record_id": "T3", "name": "王建国", "id_number": "420106" + masked[6:]},
        {"record_id": "T4", "name": "王建国", "id_number": other_tail},
    ])
    rules = blocked_candidates(people, records)
    assert rules[("T1", "R2")] >= {"household", "name"} and rules[("T1", "R1")] >= {"household", "phone"}
    assert rules[("T2", "R1")] == {"masked_id", "name"}
    # still proposed by the name, not by the masked ID
    assert rules[("T3", "R1")] == {"name"} and rules[("T4", "R1")] == {"name"}


def test_sons_record_is_never_taken_for_the_untested_father():
    """The son tests, the father does not; they share phone and address."""
    links = link(family(), records_table([{"record_id": "T1", "name": "王小明", "phone": FAMILY_PHONE,
                                         "address": "科苑路1巷3栋2单元502"}]))
    assert "R1" not in links["resident_id"].to_list()


def test_a_typo_that_lands_on_a_twins_id_is_decided_by_the_name():
    """Twin A's record carries twin B's ID (a digit typed wrong): the name must win or the pair is unsure."""
    links = link(family(), records_table([{"record_id": "T1", "name": "王欣怡", "id_number": TWIN_B}]))
    resident, decision = decision_for(links, "T1")
    assert not (resident == "R4" and decision == "match")


def test_same_name_neighbours_without_id_are_not_guessed():
    people = roster([
        {"resident_id": "N1", "name": "李娜", "address": "科苑路1巷3栋1单元101", "phone": "13912345678"},
        {"resident_id": "N2", "name": "李娜", "address": "科苑路1巷3栋1单元102", "phone": "13900000002"},
    ])
    links = link(people, records_table([{"record_id": "T1", "name": "李娜", "address": "科苑路1巷3栋"}]))
    _, decision = decision_for(links, "T1")
    assert decision != "match"


def test_same_name_neighbour_found_by_her_own_phone():
    people = roster([
        {"resident_id": "N1", "name": "李娜", "address": "科苑路1巷3栋1单元101", "phone": "13912345678"},
        {"resident_id": "N2", "name": "李娜", "address": "科苑路1巷3栋1单元102", "phone": "13900000002"},
    ])
    links = link(people, records_table([{"record_id": "T1", "name": "李娜", "phone": "+86 139-0000-0002"}]))
    assert decision_for(links, "T1") == ("N2", "match")


def test_legacy_15_digit_roster_id_matches_the_18_digit_record():
    legacy = FATHER[:6] + FATHER[8:17]
    people = roster([{"resident_id": "R1", "name": "王建国", "id_number": legacy}])
    links = link(people, records_table([{"record_id": "T1", "name": "王建国", "id_number": FATHER}]))
    assert decision_for(links, "T1") == ("R1", "match")


def test_a_visitor_with_a_residents_name_but_another_id_is_not_linked():
    people = roster([{"resident_id": "R1", "name": "王建国", "id_number": FATHER, "phone": FAMILY_PHONE}])
    stranger = make_id("420106", "19760101", "055")
    links = link(people, records_table([{"record_id": "T1", "name": "王建国", "id_number": stranger,
                                       "phone": "13700000000"}]))
    _, decision = decision_for(links, "T1")
    assert decision is None


def test_a_visitor_born_the_same_day_as_a_namesake_resident_is_not_linked_on_the_birth_segment():
    """A city of 20M has many namesakes born the same day: two valid IDs differing outside the birth segment
    are two people (5,325 visitors were linked this way at 20M). A record whose ID fails its check digit can
    still hold typos, so there the birth segment stays neutral evidence."""
    people = roster([{"resident_id": "R1", "name": "王建国", "id_number": FATHER, "phone": FAMILY_PHONE,
                      "birth_date": "1958-03-04", "gender": "男"}])
    visitor = make_id("420106", "19580304", "075")  # another city, the same birth date, a valid ID
    typed = {"name": "王建国", "phone": "13700000000"}
    links = link(people, records_table([{"record_id": "T1", "id_number": visitor, **typed}]))
    assert decision_for(links, "T1") == (None, None)
    # The resident's own ID with two digits mistyped: its check digit fails, and the name, birth and sex
    # still make it a candidate, as before.
    two_typos = FATHER[:2] + "99" + FATHER[4:]
    assert check_digit(two_typos[:17]) != two_typos[17]
    links = link(people, records_table([{"record_id": "T2", "id_number": two_typos, **typed}]))
    row = links.filter(links["record_id"] == "T2").to_dicts()
    assert row and row[0]["resident_id"] == "R1" and "证件号出生日期段一致" in row[0]["explanation"]


def test_an_excel_mangled_id_is_never_an_exact_key():
    people = roster([{"resident_id": "R1", "name": "王建国", "id_number": FATHER}])
    links = link(people, records_table([{"record_id": "T1", "name": "赵六", "id_number": "4.40305196E+17"}]))
    assert decision_for(links, "T1") == (None, None)


def test_every_link_records_method_score_and_reason():
    links = link(family(), records_table([
        {"record_id": "T1", "name": "王小明", "id_number": SON},
        {"record_id": "T2", "name": "王建国", "id_number": FATHER[:10] + "9" + FATHER[11:]},
    ]))
    by_id = {r["record_id"]: r for r in links.to_dicts()}
    assert by_id["T1"]["method"] == "id_exact"
    assert by_id["T2"]["method"].startswith("fuzzy:") and "id" in by_id["T2"]["method"]
    assert "证件号相差一位" in by_id["T2"]["explanation"] and "姓名一致" in by_id["T2"]["explanation"]
    assert by_id["T1"]["score"] > by_id["T2"]["score"] > 0


def test_shuffling_records_changes_no_decision():
    recs = [
        {"record_id": f"T{i}", "name": n, "phone": FAMILY_PHONE} for i, n in enumerate(["王小明", "王欣怡", "王建国", "王欣悦"])
    ]
    a = link(family(), records_table(recs)).sort("record_id")
    b = link(family(), records_table(list(reversed(recs)))).sort("record_id")
    assert a.select("record_id", "resident_id", "decision").equals(b.select("record_id", "resident_id", "decision"))


def test_the_rosters_row_order_changes_no_decision():
    # Residents are numbered by the rank of resident_id; a roster already in that order is numbered without
    # sorting, any other order is sorted first. A tie between two residents (one person registered twice, no
    # ID) must go to the same resident either way.
    twice = [{"resident_id": r, "name": "李秀英", "phone": "13912345678", "address": "科苑路2巷1栋101"}
             for r in ("R5", "R6")]
    people = pl.concat([family(), roster(twice)])
    recs = [{"record_id": f"T{i}", "name": n, "phone": FAMILY_PHONE}
            for i, n in enumerate(["王小明", "王欣怡", "王建国", "王欣悦"])]
    recs.append({"record_id": "T9", "name": "李秀英", "phone": "13912345678"})
    forward = link(people, records_table(recs)).sort("record_id")
    backward = link(people.reverse(), records_table(recs)).sort("record_id")
    assert forward.height == 5 and forward.equals(backward)
    assert forward.filter(pl.col("record_id") == "T9")["resident_id"].item() == "R5"


def test_a_name_with_a_character_left_out_and_nothing_else_is_only_possible():
    links = link(family(), records_table([{"record_id": "T1", "name": "王明", "phone": FAMILY_PHONE}]))
    resident, decision = decision_for(links, "T1")
    assert decision != "match"


def test_a_typo_in_the_roster_id_is_found_from_the_records_valid_id():
    # The typo is on the roster's side: only the roster's ID fails the check, so its neighbours are probed.
    typo = FATHER[:14] + ("1" if FATHER[14] != "1" else "2") + FATHER[15:]
    people = roster([{"resident_id": "R1", "name": "王建国", "id_number": typo}])
    links = link(people, records_table([{"record_id": "T1", "name": "王建国", "id_number": FATHER}]))
    row = links.filter(links["record_id"] == "T1").to_dicts()[0]
    assert (row["resident_id"], row["decision"]) == ("R1", "match")
    assert "id" in row["method"].removeprefix("fuzzy:").split("+")
    assert "证件号相差一位" in row["explanation"]


def test_a_typo_in_an_upgraded_15_digit_roster_id_is_found_from_the_records_side():
    # The roster's 15-digit ID passes the check once upgraded; the record's 18-digit ID has a typo and fails
    # it: only the record's neighbours whose check holds are probed, and the upgraded ID is one of them.
    legacy = FATHER[:6] + FATHER[8:17]
    for typo in (FATHER[:10] + ("1" if FATHER[10] != "1" else "2") + FATHER[11:],  # a digit
                 FATHER[:12] + FATHER[13] + FATHER[12] + FATHER[14:]):  # two neighbours swapped
        assert typo != FATHER
        people = roster([{"resident_id": "R1", "name": "王建国", "id_number": legacy},
                         {"resident_id": "R2", "name": "王建国", "id_number": SON}])
        links = link(people, records_table([{"record_id": "T1", "name": "王建国", "id_number": typo}]))
        row = links.filter(links["record_id"] == "T1").to_dicts()[0]
        assert row["resident_id"] == "R1" and row["decision"] == "match"
        assert "id" in row["method"].removeprefix("fuzzy:").split("+")


def test_decisions_do_not_depend_on_how_the_pairs_are_sliced():
    recs = [{"record_id": f"T{i}", "name": n, "phone": FAMILY_PHONE}
            for i, n in enumerate(["王小明", "王欣怡", "王建国", "王欣悦", "王晓明"])]
    recs += [{"record_id": "T9", "name": "王建国", "id_number": FATHER[:10] + "9" + FATHER[11:]}]
    whole = link(family(), records_table(recs)).sort("record_id")
    sliced = link(family(), records_table(recs), pairs_per_slice=2).sort("record_id")
    assert whole.height >= 5 and whole.equals(sliced)


def test_exact_stage_pairs_compare_as_every_pair_does():
    """The exact stage's pairs take a shorter comparison (same checked ID, name reads the same): whatever the
    name's spelling, phone and address, their levels, score and explanation are what the full one gives."""
    from itertools import product

    import polars as pl

    from transforms.comparison import (
        ScoreSettings,
        compare_exact_pairs,
        compare_pairs,
        explain_levels,
        score_pairs,
    )

    names = [("王小明", "王小明"), ("王小明", "王晓明")]  # exact, homophone (the exact stage needs the same reading)
    phones = [("13800138000", "13800138000"), ("13800138001", "13800138000"), ("13912345678", "13800138000"),
              ("138****8000", "13800138000"), ("13512345678", "13800138000"), (None, "13800138000"), ("13800138000", None)]
    addresses = [("科苑路1巷3栋2单元502", "科苑路1巷3栋2单元502"), ("1巷3栋2单元502", "科苑路1巷3栋2单元502"),
                 ("科苑路1巷3栋1单元101", "科苑路1巷3栋2单元502"), ("白石路8号", "科苑路1巷3栋2单元502"),
                 (None, "科苑路1巷3栋2单元502")]
    rows = []
    for (nl, nr), (pl_, pr), (al, ar) in product(names, phones, addresses):
        block = lambda a: a.split("单元")[0].rsplit("栋", 1)[0] + "栋" if a and "栋" in a else None  # noqa: E731
        rows.append({
            "name_norm_l": nl, "name_norm_r": nr, "name_py_l": "wangxiaoming", "name_py_r": "wangxiaoming",
            "name_py_loose_l": "wangxiaomin", "name_py_loose_r": "wangxiaomin",
            "id_norm_l": SON, "id_norm_r": SON, "id_body_l": SON, "id_body_r": SON, "id_flag_l": "ok", "id_flag_r": "ok",
            "id_birth_raw_l": "1988-06-12", "id_birth_raw_r": "1988-06-12", "birth_l": "1988-06-12",
            "birth_r": "1988-05-01", "sex_l": "男", "sex_r": "女",  # contradicted, but the ID has spoken
            "phone_norm_l": pl_, "phone_norm_r": pr, "phone_flag_l": "mobile", "phone_flag_r": "mobile",
            "addr_canon_l": al, "addr_canon_r": ar, "addr_block_l": block(al), "addr_block_r": block(ar),
            "household_phones_r": ["13800138000", "13912345678"], "household_ids_r": [SON],
        })
    full = pl.DataFrame(rows)
    short = full.select([f"{c}_{side}" for c in ("name_norm", "phone_norm", "addr_canon", "addr_block")
                         for side in "lr"] + ["household_phones_r"])
    a = explain_levels(score_pairs(compare_pairs(full), ScoreSettings()))
    b = explain_levels(score_pairs(compare_exact_pairs(short), ScoreSettings()))
    for col in ("id_level", "name_level", "phone_level", "address_level", "score", "explanation"):
        assert a[col].to_list() == b[col].to_list(), col
    assert set(a["phone_level"]) >= {"exact", "household", "one_edit", "masked_agree", "different", "missing"}
    assert set(a["address_level"]) == {"same", "building", "different", "missing"}
    assert set(a["name_level"]) == {"exact", "homophone"}


def test_a_record_with_one_candidate_is_decided_alike_with_or_without_others_ranked_beside_it():
    """decide_links skips ranking when every record has one candidate (the exact stage): the decisions must
    be those it makes when ranking, as it does when another record in the slice has two candidates."""
    import polars as pl

    from transforms.decision import DecisionSettings, decide_links

    rows = []
    for i, (score, name, id_level, birth) in enumerate([
        (21.0, "exact", "exact", "missing"), (12.5, "homophone", "exact", "missing"),
        (9.6, "exact", "missing", "different"),  # contradicted: the ID did not speak
        (9.6, "different", "missing", "equal"), (7.0, "loose", "missing", "equal"), (3.0, "exact", "missing", "equal"),
    ]):
        rows.append({"_li": i, "_ri": 10 + i, "record_kind": "test", "record_id": f"T{i}", "resident_id": f"R{i}",
                     "score": score, "id_level": id_level, "name_level": name, "phone_level": "exact",
                     "birth_level": birth, "sex_level": "equal", "address_level": "same", "stage": "exact",
                     "rule_bits": 0})
    alone = pl.DataFrame(rows)
    twice = dict(rows[0], _li=99, record_id="T99")
    with_a_ranked_record = pl.concat([alone, pl.DataFrame([twice, dict(twice, _ri=5, resident_id="R99")])])
    a = decide_links(alone, DecisionSettings())
    b = decide_links(with_a_ranked_record, DecisionSettings()).filter(pl.col("record_id") != "T99")
    assert a.height == 5 and a.equals(b)
    assert set(a["decision"]) == {"match", "possible"}


def test_a_records_candidates_are_weighed_against_each_other():
    """The best candidate is taken only when no other comes within the margin and no other's name agrees
    where the best one's does not; ties go to the lower resident_id. Candidates of several records, shuffled."""
    import polars as pl

    from transforms.decision import DecisionSettings, decide_links

    def pair(record: str, resident: int, score: float, name: str = "exact") -> dict:
        return {"_li": int(record[1:]), "_ri": resident, "record_kind": "test", "record_id": record,
                "resident_id": f"R{resident:02d}", "score": score, "id_level": "missing", "name_level": name,
                "phone_level": "exact", "birth_level": "equal", "sex_level": "equal", "address_level": "same",
                "stage": "blocking", "rule_bits": 1}

    pairs = [
        pair("T1", 3, 15.0), pair("T1", 4, 5.0), pair("T1", 5, 12.0),  # runner-up 3 below: a match
        pair("T2", 6, 15.0), pair("T2", 7, 13.5),  # runner-up within the margin of 2: verify
        pair("T3", 9, 15.0, "loose"), pair("T3", 8, 7.0, "homophone"),  # another's name agrees: verify
        pair("T4", 12, 15.0, "loose"), pair("T4", 11, 5.0, "homophone"),  # it scores below possible: a match
        pair("T5", 14, 11.0), pair("T5", 13, 11.0),  # a tie: the lower resident_id, and verify
        pair("T6", 15, 10.0),  # alone
    ]
    decided = decide_links(pl.DataFrame(pairs).sample(fraction=1.0, shuffle=True, seed=3), DecisionSettings())
    got = {r["record_id"]: (r["resident_id"], r["decision"]) for r in decided.iter_rows(named=True)}
    assert got == {"T1": ("R03", "match"), "T2": ("R06", "possible"), "T3": ("R09", "possible"),
                   "T4": ("R12", "match"), "T5": ("R13", "possible"), "T6": ("R15", "match")}
    assert decided.filter(pl.col("decision") == "possible")["explanation"].str.ends_with("需核实").all()


def test_a_flagged_ids_checked_neighbours_are_its_neighbours_whose_check_holds():
    """The blocking meets a flagged record's ID with residents' IDs through only those of its ~200 one-typo
    neighbours whose check character holds: computed, they must be exactly the generated ones that pass."""
    import random

    import duckdb

    from transforms.idcard import check_digit, is_valid_id
    from transforms.linking import _CHECKABLE, _checked_id_neighbours_sql, _id_neighbours_sql

    rng = random.Random(7)
    bodies = []
    for _ in range(300):
        body17 = "".join(rng.choice("0123456789") for _ in range(17))
        valid = body17 + check_digit(body17)
        typo = list(valid)
        i = rng.randrange(18)
        typo[i] = rng.choice("0123456789X" if i == 17 else "0123456789")
        bodies += [valid, "".join(typo), body17 + rng.choice("0123456789X")]
    bodies += ["11010119900307123X", "110101199003071230", "1101011990030712X5"]  # the last is left to the generator
    con = duckdb.connect()
    con.execute("CREATE TABLE src AS SELECT i AS _li, id_body FROM (SELECT unnest(?) AS id_body, "
                "unnest(range(len(?))) AS i)", [bodies, bodies])
    every = con.sql(_id_neighbours_sql("src", "_li")).fetchall()
    checked = con.sql(_checked_id_neighbours_sql(f"(SELECT * FROM src WHERE {_CHECKABLE})", "_li")).fetchall()
    assert len(checked) == len(set(checked))
    assert set(checked) == {(li, probe) for li, probe in every if is_valid_id(probe) and li != len(bodies) - 1}
    assert len(checked) > len(bodies) and len(every) > 8 * len(checked)


def test_households_list_each_addresses_phones_and_ids_within_the_cap():
    """transforms.pair_decisions.households: per address, its residents' distinct mobile phones and checked
    IDs, sorted; a list is null when its count is 0 or over the cap (the other may still be given), and an
    address with neither in bounds, or no address, has no row."""
    from transforms.pair_decisions import households

    def person(addr, phone, flag, id_norm):
        return {"addr_canon": addr, "phone_norm": phone, "phone_flag": flag, "id_norm": id_norm}

    people = pl.DataFrame([
        person("A", "139", "mobile", "ID2"), person("A", "138", "mobile", "ID1"), person("A", "138", "mobile", None),
        person("A", "0755", "landline", "ID3"),
        *[person("B", f"13{i}", "mobile", None) for i in range(3)],  # three phones, no ID
        *[person("C", f"15{i}", "mobile", f"C{i}") for i in range(3)], person("C", None, None, "C9"),
        person(None, "137", "mobile", "ID9"),
        person("D", None, "missing", None),
    ])
    got = households(people, max_members=3).sort("addr_canon")
    assert got.to_dicts() == [
        {"addr_canon": "A", "household_phones": ["138", "139"], "household_ids": ["ID1", "ID2", "ID3"]},
        {"addr_canon": "B", "household_phones": ["130", "131", "132"], "household_ids": None},
        {"addr_canon": "C", "household_phones": ["150", "151", "152"], "household_ids": None},  # 4 IDs > 3
    ]


def _household_roster() -> pl.DataFrame:
    """60 numbered residents over 12 addresses (some with none), sharing IDs and phones at random."""
    import random

    from transforms.pair_decisions import number_residents

    rng = random.Random(7)
    people = []
    for n in range(60):
        addr = None if n % 13 == 0 else f"A{rng.randrange(12)}"
        people.append({"resident_id": f"R{n:03d}", "name_norm": "王小明", "name_py": "wangxiaoming",
                       "name_py_loose": "wangxiaoming", "id_norm": f"ID{rng.randrange(40)}", "id_body": None,
                       "id_flag": "ok", "id_birth_raw": None, "birth": None, "sex": None,
                       "phone_norm": f"138{rng.randrange(30):08d}", "phone_flag": "mobile", "addr_canon": addr,
                       "addr_block": None})
    return number_residents(pl.DataFrame(people, schema_overrides=dict.fromkeys(
        ("id_body", "id_birth_raw", "birth", "sex", "addr_block"), pl.String)))


def _assert_own_households(side, table: pl.DataFrame) -> None:
    """Every resident's household row in side holds its own address's phones and IDs (table: by address)."""
    by_address = {r["addr_canon"]: r for r in table.iter_rows(named=True)}
    for addr, hi in zip(side.residents["addr_canon"], side.residents["_hi"], strict=True):
        own = by_address.get(addr)
        if own is None:
            assert hi is None
        else:
            assert side.households.row(hi, named=True) == {k: own[k] for k in ("household_phones", "household_ids")}


def test_a_pair_reads_its_own_residents_household():
    """households come in the order of each address's first resident, and roster_side numbers them as they
    come (in any order): every resident's household row holds its own address's phones and IDs, and the
    pairs' levels are those of the lists joined to each resident by address."""
    from transforms.comparison import LEVEL_COLUMNS, compare_pairs
    from transforms.pair_decisions import households, pair_sides, roster_side

    residents = _household_roster()
    table = households(residents, max_members=6)
    first_seen = list(dict.fromkeys(a for a in residents["addr_canon"].to_list() if a in set(table["addr_canon"])))
    assert table["addr_canon"].to_list() == first_seen
    table = table.sample(fraction=1.0, shuffle=True, seed=3)  # as the database may give them back
    assert table["addr_canon"].to_list() != first_seen
    side = roster_side(residents, table)
    _assert_own_households(side, table)
    # Pairs of every record with every resident, their lists taken by household row or joined by address.
    records = residents.drop("resident_id", "_ri").with_columns(
        pl.col("phone_norm").shift(1), pl.col("id_norm").shift(2)).with_row_index("_li").with_columns(
        pl.lit("test").alias("record_kind"), pl.col("_li").cast(pl.String).alias("record_id"))
    pairs = pl.DataFrame({"_li": [li for li in range(60) for _ in range(60)],
                          "_ri": [ri for _ in range(60) for ri in range(60)]}, schema={"_li": pl.UInt32, "_ri": pl.UInt32})
    sides = pair_sides(pairs, records, side)
    lists = residents.select("addr_canon").join(table, on="addr_canon", how="left", maintain_order="left")
    joined = sides.with_columns(lists["household_phones"].gather(pairs["_ri"]).alias("household_phones_r"),
                                lists["household_ids"].gather(pairs["_ri"]).alias("household_ids_r"))
    through = compare_pairs(sides).select(LEVEL_COLUMNS)
    assert through.equals(compare_pairs(joined).select(LEVEL_COLUMNS))
    assert set(through["phone_level"]) >= {"exact", "household"} and "household" in set(through["id_level"])


def test_household_rows_kept_and_given_back_in_any_order_are_each_residents_own():
    """A refresh with the same roster takes each resident's household row from the database (rows and
    households both in no set order there): renumbered to the households' order now, every resident still
    reads its own address's household, as finding the rows by address gives."""
    from transforms.pair_decisions import household_rows, households, kept_household_rows, roster_side

    residents = _household_roster()
    table = households(residents, max_members=6)
    rows = household_rows(residents, table)
    assert rows.null_count() > 0 and rows.drop_nulls().n_unique() == table.height
    stored = table.with_row_index("_hi").sample(fraction=1.0, shuffle=True, seed=5)
    kept = rows.to_frame().with_row_index("_ri").filter(pl.col("_hi").is_not_null()).sample(
        fraction=1.0, shuffle=True, seed=6)
    again = kept_household_rows(stored, kept, residents.height)
    assert not again.equals(rows)  # numbered as the households come back now
    side = roster_side(residents, stored, again)
    _assert_own_households(side, table)
    assert side.residents.equals(roster_side(residents, stored).residents)


def test_each_level_is_read_from_its_own_pair_among_others():
    """Every ID and name level in one frame of pairs, as the blocking mixes them: the columns a later branch
    reads (birth segments, whether names begin alike, their distance) are worked out only for the pairs
    that can get there, and each pair still gets its own level."""
    from transforms.comparison import compare_pairs
    from transforms.idcard import normalise_ids
    from transforms.names import normalise_names

    bad_check = SON[:17] + ("0" if SON[17] != "0" else "1")
    same_birth_other_tail = SON[:14] + "9999"  # check digit fails, birth segment kept
    other_birth = SON[:6] + "19900101" + "9999"
    masked = SON[:6] + "*" * 8 + SON[-4:]
    masked_other = FATHER[:6] + "*" * 8 + "0000"
    one_typo = SON[:10] + ("9" if SON[10] != "9" else "8") + SON[11:]
    cases = [  # (record name, record ID, resident name, resident ID, ID level, name level)
        ("王小明", SON, "王小明", SON, "exact", "exact"),
        ("王晓明", None, "王小明", SON, "missing", "homophone"),
        ("王?明", None, "王小明", SON, "missing", "wildcard"),
        ("王晓敏", None, "王小明", SON, "missing", "loose"),
        ("王明", None, "王小明", SON, "missing", "dropped"),
        ("王大明", None, "王小明", SON, "missing", "similar"),
        ("张小明", None, "王小明", SON, "missing", "different"),  # one character off, but not the surname
        ("李大伟", None, "王小明", SON, "missing", "different"),
        ("王小明", FATHER, "王小明", SON, "household", "exact"),
        ("王小明", one_typo, "王小明", SON, "one_edit", "exact"),
        ("王小明", masked, "王小明", SON, "masked_agree", "exact"),
        ("王小明", masked_other, "王小明", SON, "mismatch", "exact"),
        ("王小明", TWIN_A, "王小明", SON, "mismatch", "exact"),  # both checked, far apart
        ("王小明", same_birth_other_tail, "王小明", SON, "birth_segment", "exact"),
        ("王小明", other_birth, "王小明", SON, "mismatch", "exact"),
        ("王晓明", bad_check, "王小明", SON, "one_edit", "homophone"),
        (None, None, "王小明", SON, "missing", "different"),
    ]

    def side(names, ids_, suffix):
        frame = pl.concat([normalise_names(pl.DataFrame({"name": names}, schema={"name": pl.String})),
                           normalise_ids(pl.DataFrame({"id_number": ids_, "id_type": [None] * len(ids_)},
                                                      schema={"id_number": pl.String, "id_type": pl.String}))],
                          how="horizontal")
        frame = frame.select("name_norm", "name_py", "name_py_loose", "id_norm", "id_body", "id_flag", "id_birth_raw",
                             pl.col("id_birth_raw").alias("birth"), pl.lit(None, pl.String).alias("sex"),
                             pl.lit(None, pl.String).alias("phone_norm"), pl.lit(None, pl.String).alias("addr_canon"),
                             pl.lit(None, pl.String).alias("addr_block"))
        return frame.rename({c: f"{c}_{suffix}" for c in frame.columns})

    pairs = pl.concat([side([c[0] for c in cases], [c[1] for c in cases], "l"),
                       side([c[2] for c in cases], [c[3] for c in cases], "r"),
                       pl.DataFrame({"household_phones_r": [[]] * len(cases), "household_ids_r": [[SON, FATHER]] * len(cases)},
                                    schema={"household_phones_r": pl.List(pl.String),
                                            "household_ids_r": pl.List(pl.String)})], how="horizontal")
    got = compare_pairs(pairs)
    assert [(r["id_level"], r["name_level"]) for r in got.iter_rows(named=True)] == [(c[4], c[5]) for c in cases]


def test_each_pair_is_explained_by_its_own_levels_among_many():
    """Explanations are put together once per combination of levels and taken to the pairs by number: in a
    frame of many mixed combinations (some levels missing), each pair reads as it does alone."""
    import random

    from transforms.comparison import LEVEL_TYPES, LEVELS, explain_levels

    rng = random.Random(7)
    rows = [{f"{f}_level": (None if rng.random() < 0.05 else rng.choice(levels)) for f, levels in LEVELS.items()}
            for _ in range(400)]
    frame = pl.DataFrame(rows, schema={f"{f}_level": LEVEL_TYPES[f] for f in LEVELS})
    together = explain_levels(frame)["explanation"].to_list()
    alone = [explain_levels(frame.slice(i, 1))["explanation"].item() for i in range(frame.height)]
    assert together == alone
    assert len(set(together)) > 50  # many combinations, not a few repeated
