"""The one declaration of every input and output table.

Readers, row validation, the Great Expectations suites, the matcher and the sheet headers all derive from
these objects, so a column is added or renamed in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class Kind(StrEnum):
    """How a raw string cell is parsed."""

    TEXT = "text"
    DATE = "date"
    DATETIME = "datetime"
    INT = "int"


class Role(StrEnum):
    """What a column contributes to identifying a person."""

    KEY = "key"
    NAME = "name"
    ID_TYPE = "id_type"
    ID_NUMBER = "id_number"
    PHONE = "phone"
    BIRTH_DATE = "birth_date"
    GENDER = "gender"
    ADDRESS = "address"
    EVENT_TIME = "event_time"


RESIDENT_ID_CARD = "居民身份证"
ID_TYPES = (RESIDENT_ID_CARD, "护照", "港澳居民来往内地通行证", "台湾居民来往大陆通行证", "外国人永久居留身份证")
STATUS_IN_PLACE = "在住"
STATUSES = (STATUS_IN_PLACE, "外出", "迁出", "死亡")
TAGS = ("高龄", "残疾", "卧床", "孕妇", "禁忌症")
HOME_VISIT_TAGS = ("卧床", "残疾")
CONTRAINDICATION_TAG = "禁忌症"
GENDERS = ("男", "女")
# Plausibility bounds shared by row parsing and the Great Expectations suites.
EARLIEST_BIRTH = date(1900, 1, 1)
EARLIEST_EVENT = date(2020, 1, 1)  # mass nucleic-acid testing and COVID vaccination began in 2020
DOSE_RANGE = (1, 5)
# What a worker writes on a verify row once the call has settled it: fed back to the matcher.
VERDICT_SAME = "是本人"
VERDICT_OTHER = "不是本人"
VERDICTS = (VERDICT_SAME, VERDICT_OTHER)
# The verify sheet's column a worker writes one of VERDICTS in, read back by transforms.feedback.
VERDICT_HEADER = "核实结论"
# What a worker writes in 联系结果 after a call; the next refresh acts on each (transforms/outcomes.py).
CONTACTED = "已联系-将检测"
TESTED_ELSEWHERE = "已在外地检测"
AWAY = "外出不在本地"
REFUSED = "拒绝"
UNREACHABLE = "无法联系"
WRONG_NUMBER = "号码错误"
CONTACT_OUTCOMES = (CONTACTED, TESTED_ELSEWHERE, AWAY, REFUSED, UNREACHABLE, WRONG_NUMBER, "其他")
# The columns a worker fills in on the call sheets, and the returned sheets are read by.
OUTCOME_HEADER = "联系结果"
NOTE_HEADER = "备注"


@dataclass(frozen=True)
class VaccineSeries:
    """A product's primary series: how many doses, and the least gap between them."""

    doses: int
    interval_days: int


VACCINES: dict[str, VaccineSeries] = {
    "北京生物": VaccineSeries(doses=2, interval_days=21),
    "武汉生物": VaccineSeries(doses=2, interval_days=21),
    "北京科兴": VaccineSeries(doses=2, interval_days=21),
    "康希诺": VaccineSeries(doses=1, interval_days=0),
    "智飞龙科马": VaccineSeries(doses=3, interval_days=28),
}
# How exports actually spell the makers; mapped to the canonical names above before validation.
VACCINE_ALIASES: dict[str, str] = {
    "国药北京": "北京生物",
    "北京生物制品研究所": "北京生物",
    "国药中生北京": "北京生物",
    "国药武汉": "武汉生物",
    "武汉生物制品研究所": "武汉生物",
    "国药中生武汉": "武汉生物",
    "科兴": "北京科兴",
    "科兴中维": "北京科兴",
    "北京科兴中维": "北京科兴",
    "康希诺生物": "康希诺",
    "康希诺(天津)": "康希诺",
    "智飞": "智飞龙科马",
    "安徽智飞龙科马": "智飞龙科马",
    "智飞生物": "智飞龙科马",
}


@dataclass(frozen=True)
class Column:
    name: str
    zh: str
    kind: Kind = Kind.TEXT
    required: bool = False
    allowed: tuple[str, ...] = ()
    default: str | None = None
    role: Role | None = None
    multi: bool = False  # ';'-separated list of allowed values
    aliases: tuple[str, ...] = ()  # other headers seen in real exports


@dataclass(frozen=True)
class Contract:
    name: str
    zh: str
    columns: tuple[Column, ...]
    unique_key: str | None = None
    event_time: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def by_role(self, role: Role) -> str | None:
        return next((c.name for c in self.columns if c.role == role), None)

    def header_map(self) -> dict[str, str]:
        """Every accepted header spelling, folded, to its canonical column name."""
        out: dict[str, str] = {}
        for c in self.columns:
            for h in (c.name, c.zh, *c.aliases):
                out[fold_header(h)] = c.name
        return out


def fold_header(header: str) -> str:
    """Headers arrive with BOMs, full-width brackets, stray spaces and '*' marks for required fields."""
    h = header.replace("\ufeff", "").strip().lower()
    for ch in " \u3000*＊:：":
        h = h.replace(ch, "")
    return h.replace("（", "(").replace("）", ")")


_ID_TYPE = Column("id_type", "证件类型", allowed=ID_TYPES, default=RESIDENT_ID_CARD, role=Role.ID_TYPE)
_ID_NUMBER = Column("id_number", "证件号码", role=Role.ID_NUMBER, aliases=("身份证号", "身份证号码", "证件号"))

ROSTER = Contract(
    name="roster",
    zh="网格登记",
    unique_key="resident_id",
    columns=(
        Column("resident_id", "人员编号", required=True, role=Role.KEY),
        Column("name", "姓名", required=True, role=Role.NAME),
        _ID_TYPE,
        _ID_NUMBER,
        Column("phone", "联系电话", role=Role.PHONE, aliases=("手机号码", "手机号", "电话")),
        Column("birth_date", "出生日期", kind=Kind.DATE, role=Role.BIRTH_DATE),
        Column("gender", "性别", allowed=GENDERS, role=Role.GENDER),
        Column("address", "居住地址", required=True, role=Role.ADDRESS, aliases=("现住址", "地址")),
        Column("street", "街道", required=True),
        Column("community", "社区", required=True),
        Column("grid_id", "网格编号", required=True, aliases=("网格",)),
        Column("grid_worker", "网格员", required=True),
        Column("grid_worker_phone", "网格员电话"),
        Column("status", "居住状态", allowed=STATUSES, default=STATUS_IN_PLACE),
        Column("tags", "特殊人群", allowed=TAGS, multi=True),
    ),
)

TESTS = Contract(
    name="tests",
    zh="核酸检测记录",
    unique_key="record_id",
    event_time="sampled_at",
    columns=(
        Column("record_id", "采样编号", required=True, role=Role.KEY, aliases=("条码号", "采样条码")),
        Column("name", "姓名", required=True, role=Role.NAME),
        _ID_TYPE,
        _ID_NUMBER,
        Column("phone", "手机号码", role=Role.PHONE, aliases=("联系电话", "手机号", "电话")),
        Column("sampled_at", "采样时间", kind=Kind.DATETIME, required=True, role=Role.EVENT_TIME),
        Column("site", "采样点", aliases=("采样点名称",)),
        Column("address", "现住址", role=Role.ADDRESS, aliases=("居住地址", "地址")),
    ),
)

VACCINATIONS = Contract(
    name="vaccinations",
    zh="疫苗接种记录",
    unique_key="record_id",
    event_time="vaccinated_at",
    columns=(
        Column("record_id", "接种编号", required=True, role=Role.KEY),
        Column("name", "姓名", required=True, role=Role.NAME),
        _ID_TYPE,
        _ID_NUMBER,
        Column("phone", "手机号码", role=Role.PHONE, aliases=("联系电话", "手机号", "电话")),
        Column("vaccinated_at", "接种时间", kind=Kind.DATETIME, required=True, role=Role.EVENT_TIME,
               aliases=("接种日期",)),
        Column("dose", "剂次", kind=Kind.INT),
        Column("vaccine", "疫苗厂家", allowed=tuple(VACCINES), aliases=("生产企业", "疫苗生产企业")),
        Column("site", "接种单位", aliases=("接种点",)),
    ),
)

INPUTS: dict[str, Contract] = {c.name: c for c in (ROSTER, TESTS, VACCINATIONS)}
RECORD_KINDS = {"test": TESTS, "vaccination": VACCINATIONS}
KIND_OF_SOURCE = {contract.name: kind for kind, contract in RECORD_KINDS.items()}  # "tests" -> "test"


@dataclass(frozen=True)
class OutputColumn:
    name: str
    zh: str
    width: int = 12


@dataclass(frozen=True)
class OutputTable:
    name: str
    columns: tuple[OutputColumn, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


LISTS = ("call", "home_visit", "verify")
REASONS = ("untested", "unvaccinated", "dose_due", "booster_due")
LIST_ZH = {"call": "电话通知", "home_visit": "上门采样", "verify": "待核实"}
REASON_ZH = {"untested": "未检测", "unvaccinated": "未接种", "dose_due": "应接种下一剂", "booster_due": "应接种加强针"}

# Where a person belongs: every people-facing table carries it, in this order.
_PLACE = (
    OutputColumn("street", "街道", 10),
    OutputColumn("community", "社区", 10),
    OutputColumn("grid_id", "网格编号", 10),
    OutputColumn("grid_worker", "网格员", 8),
)

CALL_LIST = OutputTable(
    name="call_list",
    columns=(
        OutputColumn("resident_id", "人员编号", 12),
        *_PLACE,
        OutputColumn("name", "姓名", 10),
        OutputColumn("phone", "联系电话", 14),
        OutputColumn("address", "居住地址", 34),
        OutputColumn("list", "名单", 8),
        OutputColumn("reason", "原因", 12),
        OutputColumn("detail", "说明", 40),
        OutputColumn("tags", "特殊人群", 10),
        OutputColumn("id_masked", "证件号码", 20),
        OutputColumn("building", "楼栋", 6),
        OutputColumn("unit", "单元", 6),
        OutputColumn("room", "房号", 6),
        # verify rows: the record the worker is asked about, e.g. test:T00000000282
        OutputColumn("candidate_record", "候选记录编号", 18),
        OutputColumn("new_since_last", "新增", 6),  # 是: not on the list at the last refresh
    ),
)

ESCALATION = OutputTable(
    name="escalation",
    columns=(
        OutputColumn("priority", "优先级", 8),
        *_PLACE,
        OutputColumn("name", "姓名", 10),
        OutputColumn("phone", "联系电话", 14),
        OutputColumn("address", "居住地址", 34),
        OutputColumn("tags", "特殊人群", 10),
        OutputColumn("why", "升级原因", 30),
        OutputColumn("call_attempts", "已联系次数", 8),
        OutputColumn("last_outcome", "最近联系结果", 14),
        OutputColumn("resident_id", "人员编号", 12),
    ),
)

UNREGISTERED = OutputTable(
    name="unregistered",
    columns=(
        *_PLACE,
        OutputColumn("name", "姓名", 10),
        OutputColumn("phone", "联系电话", 14),
        OutputColumn("id_masked", "证件号码", 20),
        OutputColumn("address", "现住址", 34),
        OutputColumn("site", "采样点", 20),
        OutputColumn("sampled_at", "采样时间", 16),
        OutputColumn("why", "列入原因", 24),
        OutputColumn("record_id", "采样编号", 14),
    ),
)

ROSTER_CORRECTIONS = OutputTable(
    name="roster_corrections",
    columns=(
        *_PLACE,
        OutputColumn("resident_id", "人员编号", 12),
        OutputColumn("name", "姓名", 10),
        OutputColumn("address", "居住地址", 34),
        OutputColumn("problem", "需更正", 30),
        OutputColumn("other_resident_id", "疑似重复人员编号", 14),
    ),
)

MATCHES = OutputTable(
    name="matches",
    columns=(
        OutputColumn("record_kind", "记录类型"),
        OutputColumn("record_id", "记录编号"),
        OutputColumn("resident_id", "人员编号"),
        OutputColumn("method", "匹配方式"),
        OutputColumn("score", "得分"),
        OutputColumn("decision", "结论"),
        OutputColumn("explanation", "依据"),
    ),
)
