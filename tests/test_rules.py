"""The campaign rules on hand-made residents: each vaccine series, the date edges, scope and lists."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from helpers import roster

from transforms.contract import ROSTER, VACCINES
from transforms.normalise import normalise_people
from transforms.rules import Round, RuleSettings, build_call_list, resident_status

AS_OF = datetime(2022, 5, 20, 18, 0)
RND = Round(since=datetime(2022, 5, 18, 18, 0), as_of=AS_OF)

EMPTY_TESTS = pl.DataFrame(schema={"resident_id": pl.String, "record_id": pl.String, "decision": pl.String,
                                   "score": pl.Float64, "sampled_at": pl.Datetime("us"), "candidate": pl.String})
EMPTY_VACC = pl.DataFrame(schema={"resident_id": pl.String, "record_id": pl.String, "decision": pl.String,
                                  "score": pl.Float64, "vaccinated_at": pl.Datetime("us"), "vaccine": pl.String,
                                  "candidate": pl.String})


def people(**overrides):
    base = {"resident_id": "R1", "name": "张三", "birth_date": "1980-01-01"}
    return normalise_people(roster([base | overrides]), ROSTER)


def doses(*items: tuple[str, str], decision: str = "match") -> pl.DataFrame:
    rows = [{"resident_id": "R1", "record_id": f"V{i}", "decision": decision, "score": 20.0,
             "vaccinated_at": datetime.fromisoformat(day + " 10:00"), "vaccine": vac, "candidate": "某某"}
            for i, (day, vac) in enumerate(items)]
    return pl.DataFrame(rows, schema=EMPTY_VACC.schema)


def samples(*times: str, decision: str = "match") -> pl.DataFrame:
    rows = [{"resident_id": "R1", "record_id": f"T{i}", "decision": decision, "score": 20.0,
             "sampled_at": datetime.fromisoformat(t), "candidate": "张三 05-19 10:00 社区采样点"}
            for i, t in enumerate(times)]
    return pl.DataFrame(rows, schema=EMPTY_TESTS.schema)


def reasons(res, t=EMPTY_TESTS, v=EMPTY_VACC):
    cl = build_call_list(resident_status(res, t, v, RND, RuleSettings()))
    return {(r["reason"], r["list"]) for r in cl.to_dicts()}


def vaccination_reason(res, v):
    return {r for r, _ in reasons(res, samples("2022-05-19 10:00"), v)} - {"untested"}


VACCINE_CASES = [
    ("no dose", [], {"unvaccinated"}),
    ("two-dose product, one dose 21 days ago: due", [("2022-04-29", "北京生物")], {"dose_due"}),
    ("two-dose product, one dose 20 days ago: not yet", [("2022-04-30", "北京科兴")], set()),
    ("two doses on the same day count once", [("2022-04-29", "武汉生物"), ("2022-04-29", "武汉生物")], {"dose_due"}),
    ("two-dose series complete 180 days ago: booster", [("2021-10-01", "北京生物"), ("2021-11-21", "北京生物")],
     {"booster_due"}),
    ("series complete 179 days ago: not yet", [("2021-10-20", "北京生物"), ("2021-11-22", "北京生物")], set()),
    ("CanSino is one dose", [("2021-06-01", "康希诺")], {"booster_due"}),
    ("CanSino recent", [("2022-05-01", "康希诺")], set()),
    ("Zhifei needs three doses, 28 days apart", [("2022-03-01", "智飞龙科马"), ("2022-04-22", "智飞龙科马")], {"dose_due"}),
    ("Zhifei second dose 27 days ago", [("2022-03-01", "智飞龙科马"), ("2022-04-23", "智飞龙科马")], set()),
    ("Zhifei complete, recent", [("2022-01-01", "智飞龙科马"), ("2022-02-01", "智飞龙科马"),
                                 ("2022-03-01", "智飞龙科马")], set()),
    ("booster already given", [("2021-03-01", "北京生物"), ("2021-04-01", "北京生物"), ("2021-11-01", "北京科兴")],
     set()),
    ("first product sets the series", [("2021-03-01", "康希诺"), ("2021-05-01", "北京生物")], set()),
    ("a dose after as-of does not count", [("2022-05-21", "北京生物")], {"unvaccinated"}),
    # An unnamed first dose: the series is the first day's that names a product (CanSino: one dose, so two
    # doses are neither due nor a complete series); as the default two-dose series it would be a booster.
    ("an unnamed first dose leaves the series to the next", [("2021-03-01", None), ("2021-04-01", "康希诺")], set()),
    # Two products typed for one day: the day counts once, with the first name in text order (北京生物).
    ("two products on one day: the first in text order", [("2021-03-01", "康希诺"), ("2021-03-01", "北京生物")],
     {"dose_due"}),
]


@pytest.mark.parametrize(("what", "given", "expected"), VACCINE_CASES, ids=[c[0] for c in VACCINE_CASES])
def test_vaccination_series(what, given, expected):
    assert vaccination_reason(people(), doses(*given)) == expected, what


def test_every_product_in_the_contract_has_a_series():
    assert set(VACCINES) == {"北京生物", "武汉生物", "北京科兴", "康希诺", "智飞龙科马"}


@pytest.mark.parametrize(
    ("birth", "given", "expected"),
    [
        ("2019-05-21", [], set()),  # aged 2 on as-of: not eligible
        ("2019-05-20", [], {"unvaccinated"}),  # third birthday on as-of: eligible
        ("2005-01-01", [("2021-06-01", "北京生物"), ("2021-07-01", "北京生物")], set()),  # 17: no booster
        ("2004-05-20", [("2021-06-01", "北京生物"), ("2021-07-01", "北京生物")], {"booster_due"}),  # 18 today
    ],
)
def test_age_edges(birth, given, expected):
    assert vaccination_reason(people(birth_date=birth), doses(*given)) == expected


def test_age_from_the_id_when_no_birth_date_and_adult_when_unknown():
    from transforms.idcard import check_digit

    two = "44030520200101001"  # aged 2 at as-of by the ID alone: not yet eligible
    assert vaccination_reason(people(birth_date=None, id_number=two + check_digit(two)), EMPTY_VACC) == set()
    four = "44030520180101001"
    assert vaccination_reason(people(birth_date=None, id_number=four + check_digit(four)), EMPTY_VACC) == {
        "unvaccinated"}
    unknown = people(birth_date=None)
    assert vaccination_reason(unknown, doses(("2021-06-01", "北京生物"), ("2021-07-01", "北京生物"))) == {"booster_due"}


def test_contraindication_excludes_from_vaccination_lists():
    assert vaccination_reason(people(tags="禁忌症"), EMPTY_VACC) == set()


def test_round_window_edges():
    assert ("untested", "call") not in reasons(people(), samples("2022-05-18 18:00"), doses(("2022-01-01", "康希诺")))
    assert ("untested", "call") in reasons(people(), samples("2022-05-18 17:59"), doses(("2022-01-01", "康希诺")))
    assert ("untested", "call") in reasons(people(), samples("2022-05-20 18:01"), doses(("2022-01-01", "康希诺")))


def test_bedridden_and_disabled_go_to_home_visit():
    assert ("untested", "home_visit") in reasons(people(tags="卧床"))
    assert ("untested", "home_visit") in reasons(people(tags="高龄;残疾"))
    assert ("untested", "call") in reasons(people(tags="高龄"))


@pytest.mark.parametrize("status", ["外出", "迁出", "死亡"])
def test_out_of_scope_residents_are_never_listed(status):
    assert reasons(people(status=status)) == set()


def test_blank_status_is_in_scope():
    assert ("untested", "call") in reasons(people(status=""))


def test_a_possible_test_moves_the_resident_to_verify_not_off_the_list():
    got = reasons(people(), samples("2022-05-19 10:00", decision="possible"), doses(("2022-01-01", "康希诺")))
    assert got == {("untested", "verify")}


def test_untested_detail_names_the_last_test():
    res = resident_status(people(), samples("2022-05-10 08:30"), EMPTY_VACC, RND, RuleSettings())
    cl = build_call_list(res).filter(pl.col("reason") == "untested")
    assert cl["detail"][0] == "本轮未检测；最近一次检测：2022-05-10 08:30"


def test_the_candidate_shown_does_not_depend_on_row_order():
    """Two 'possible' tests with the same score: the later one is shown, however the links arrive."""
    tied = pl.DataFrame([
        {"resident_id": "R1", "record_id": f"T{i}", "decision": "possible", "score": 5.0,
         "sampled_at": datetime.fromisoformat(t), "candidate": f"张三 {t}"}
        for i, t in enumerate(["2022-05-19 10:00", "2022-05-20 09:00", "2022-05-18 20:00"])
    ], schema=EMPTY_TESTS.schema)
    shown = set()
    for seed in range(6):
        status = resident_status(people(), tied.sample(fraction=1.0, shuffle=True, seed=seed), EMPTY_VACC, RND,
                                 RuleSettings())
        shown.add((status["test_candidate"][0], status["test_candidate_record"][0]))
    assert shown == {("张三 2022-05-20 09:00", "test:T1")}
