"""Synthetic street offices: a roster of households and the test and vaccination records their members
leave behind, typed with the errors hurried volunteers make. Ground truth comes back separately.

Every noise rate lives in NOISE_RATES, and each record carries the list of noise it received, so a
benchmark can say which kind of error cost which miss. Pure: seed in, frames out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from transforms.contract import VACCINES
from transforms.idcard import check_digit

NOISE_RATES: dict[str, float] = {
    # ID numbers
    "id_missing": 0.05,
    "id_digit_typo": 0.03,
    "id_transposition": 0.015,
    "id_lower_x": 0.5,  # of IDs ending in X
    "id_spaces": 0.02,
    "id_excel_mangled": 0.004,
    "id_missing_child": 0.2,  # children's records often carry no ID
    # names
    "name_homophone": 0.04,
    "name_rare_char": 0.6,  # of names with a rare character: typed as '?' or a common homophone
    "name_dot_variant": 0.5,  # of names with a middle dot
    "name_traditional": 0.01,  # exports from systems in traditional characters
    "name_pinyin_only": 0.004,
    "name_space": 0.02,
    # phones
    "phone_missing": 0.03,
    "phone_digit_typo": 0.02,
    "phone_country_prefix": 0.03,
    "phone_family_member": 0.08,  # registered under a relative's phone
    # addresses
    "address_missing": 0.2,
    "address_variant": 0.5,
    # vaccine maker spelled another way
    "vaccine_alias": 0.05,
    # seen in other provinces' systems (Guangdong, Shanghai, Hubei exports): privacy-masked identifiers,
    # a parent's ID on a child's record, dialect confusions, a dropped character, times as Excel serials
    "id_masked": 0.01,  # 440305********123X
    "phone_masked": 0.01,  # 138****5678
    "id_parent_on_child": 0.1,  # of children's records: a parent registered the child with their own ID
    "name_dialect": 0.01,  # n/l, f/h, -n/-ng confused (湖北, 湖南, 福建 speakers): 林 lin typed 玲 ling
    "name_char_dropped": 0.004,  # 王小明 typed 王明
    "time_unpadded": 0.1,  # 2022/5/3 9:05
    "time_excel_serial": 0.002,  # 44686.3757: a date cell exported as its number
    # whole rows a person has to fix (they end in quarantine)
    "row_bad_time": 0.001,
    "row_missing_name": 0.0005,
    "row_duplicated": 0.001,
}

SURNAMES = (
    "王" * 12 + "李" * 12 + "张" * 11 + "刘" * 8 + "陈" * 8 + "杨" * 6 + "黄" * 5 + "赵" * 5 + "吴" * 4 + "周" * 4
    + "徐许孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
    + "单仇解区朴查覃翟缪"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂华玉兰萍红梅飞鑫波斌宇浩凯健帆旭宁龙林欢阳辉鹏晨雪婷颖慧佳怡"
    "思萱梓涵然航文泽诺睿晓东春燕德兴国志成海峰亮福庆永建英琳欣嘉豪轩子一"
)
RARE = "喆垚燚犇淼昇玥堃赟祎珺頔翀彧昶旻"
RARE_HOMOPHONE = {"喆": "哲", "垚": "尧", "燚": "义", "犇": "奔", "淼": "妙", "昇": "升", "玥": "月", "堃": "坤",
                  "赟": "云", "祎": "依", "珺": "君", "頔": "迪", "翀": "冲", "彧": "玉", "昶": "畅", "旻": "民"}
DOT_NAMES = ("买买提·艾力", "阿依古丽·吐尔逊", "古丽娜尔·买买提", "热依拉·阿不都", "艾克拜尔·吐尔洪", "迪丽娜尔·阿不来提")
DOT_VARIANTS = ("•", "・", ".", "．", " ", "")
TRADITIONAL = {"陈": "陳", "张": "張", "刘": "劉", "黄": "黃", "杨": "楊", "吴": "吳", "赵": "趙", "郑": "鄭", "罗": "羅",
               "谢": "謝", "许": "許", "冯": "馮", "邓": "鄧", "苏": "蘇", "卢": "盧", "叶": "葉", "钟": "鍾", "伟": "偉",
               "华": "華", "国": "國", "红": "紅", "军": "軍", "丽": "麗", "东": "東", "龙": "龍", "兰": "蘭", "庆": "慶",
               "凯": "凱", "涛": "濤", "飞": "飛", "鹏": "鵬", "晓": "曉", "颖": "穎", "欢": "歡", "轩": "軒"}
REGIONS = ("440305", "440304", "440303", "420106", "420102", "310104", "310115", "441581", "430524", "510623")
ROADS = ("科苑路", "桃源村", "南新路", "学府路", "登良路", "后海大道", "白石路", "沙河西路", "龙珠大道", "创业路",
         "月亮湾大道", "前海路", "南光路", "高新南路", "麒麟路")
STREETS = ("粤海街道", "南头街道", "桃源街道", "招商街道", "蛇口街道", "沙河街道", "西丽街道", "南山街道")
COMMUNITY_NAMES = ("科技园", "海珠", "大冲", "高新", "深大", "南油", "荔林", "阳光", "前海", "湾厦", "月亮湾", "西丽湖")
SITES = ("社区党群服务中心采样点", "小区广场采样点", "学校操场采样点", "便民采样屋", "医院发热门诊")
VACCINE_WEIGHTS = {"北京生物": 35, "北京科兴": 35, "武汉生物": 15, "智飞龙科马": 8, "康希诺": 7}
ALIASES = {"北京生物": "国药北京", "武汉生物": "国药武汉", "北京科兴": "科兴中维", "康希诺": "康希诺生物",
           "智飞龙科马": "安徽智飞龙科马"}
CN_DIGITS = "零一二三四五六七八九"


@dataclass(frozen=True)
class Synthetic:
    roster: pl.DataFrame
    tests: pl.DataFrame
    vaccinations: pl.DataFrame
    truth_residents: pl.DataFrame  # resident_id, status, tags, in-round tested (truth)
    truth_tests: pl.DataFrame  # record_id, resident_id (null for non-residents), noise
    truth_vaccinations: pl.DataFrame  # record_id, resident_id, noise
    since: datetime
    as_of: datetime


@dataclass
class _Person:
    resident_id: str
    name: str
    id_type: str
    id_number: str
    roster_id: str  # as written on the roster (may be legacy 15-digit or blank)
    phone: str
    birth: date
    sex: str
    address: str
    street: str
    community: str
    grid_id: str
    grid_worker: str
    grid_worker_phone: str
    status: str
    tags: str
    household: list[int]


@dataclass
class Part:
    """Where the next part of a city generated part by part begins. A city of millions is generated a
    million residents at a time (the generator holds every person as a Python object); the parts share
    the sets of IDs and phones in use and continue the grid, resident and record numbering, so together
    they are one city: new streets, no key used twice, no ID or phone given to two people."""

    ids: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    grids: int = 0
    residents: int = 0
    tests: int = 0
    vaccinations: int = 0


def _mobile(rng: random.Random) -> str:
    return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))


class _Generator:
    def __init__(self, residents: int, seed: int, as_of: datetime, grid_size: int, part: Part):
        self.part = part
        self.rng = random.Random(seed)
        self.n = residents
        self.grid_size = grid_size
        self.as_of = as_of
        self.since = as_of - timedelta(days=2)
        self.ids = part.ids
        self.phones = part.phones
        self.people: list[_Person] = []

    # --- identities -------------------------------------------------------------------------------
    def new_id(self, birth: date, sex: str, region: str | None = None) -> str:
        rng = self.rng
        while True:
            reg = region or rng.choice(REGIONS)
            seq = rng.randrange(0, 100) * 10 + rng.choice((1, 3, 5, 7, 9) if sex == "男" else (0, 2, 4, 6, 8))
            body = f"{reg}{birth:%Y%m%d}{seq:03d}"
            full = body + check_digit(body)
            if full not in self.ids:
                self.ids.add(full)
                return full

    def new_phone(self) -> str:
        while True:
            p = _mobile(self.rng)
            if p not in self.phones:
                self.phones.add(p)
                return p

    def given_name(self, length: int | None = None) -> str:
        rng = self.rng
        length = length or rng.choice((1, 2, 2, 2))
        chars = [rng.choice(GIVEN) for _ in range(length)]
        if rng.random() < 0.03:
            chars[-1] = rng.choice(RARE)
        return "".join(chars)

    def birth(self, age_lo: int, age_hi: int) -> date:
        age_days = self.rng.randrange(age_lo * 365, age_hi * 365 + 364)
        return self.as_of.date() - timedelta(days=age_days)

    # --- roster -----------------------------------------------------------------------------------
    def build_roster(self) -> None:
        rng = self.rng
        grid_size = self.grid_size
        grids_per_community = 6
        communities_per_street = 6
        count = 0
        g = self.part.grids
        while count < self.n:
            street = STREETS[(g // (grids_per_community * communities_per_street)) % len(STREETS)]
            street_no = g // (grids_per_community * communities_per_street * len(STREETS))
            if street_no:
                street = f"{street}{street_no + 1}"
            ci = (g // grids_per_community) % communities_per_street
            community = f"{COMMUNITY_NAMES[(g // grids_per_community) % len(COMMUNITY_NAMES)]}社区"
            if ci >= len(COMMUNITY_NAMES):
                community = f"{community}{ci}"
            grid_id = f"G{g + 1:05d}"
            worker = rng.choice(SURNAMES) + self.given_name()
            worker_phone = self.new_phone()
            road = ROADS[g % len(ROADS)]
            lane = g // len(ROADS) + 1
            in_grid = 0
            building = 0
            while in_grid < grid_size and count < self.n:
                building += 1
                for unit in range(1, rng.choice((2, 3, 4)) + 1):
                    for floor in range(1, rng.choice((6, 9, 12, 18)) + 1):
                        for door in range(1, 3):
                            if in_grid >= grid_size or count >= self.n:
                                break
                            if rng.random() < 0.12:
                                continue  # empty flat
                            address = f"{street}{community}{road}{lane}巷{building}栋{unit}单元{floor}{door:02d}"
                            added = self.household(address, street, community, grid_id, worker, worker_phone)
                            in_grid += added
                            count += added
            g += 1
        self.part.grids = g

    def household(self, address: str, street: str, community: str, grid_id: str, worker: str, worker_phone: str) -> int:
        rng = self.rng
        size = rng.choices((1, 2, 3, 4, 5), weights=(15, 28, 27, 18, 12))[0]
        size = min(size, self.n - len(self.people))
        surname = rng.choice(SURNAMES)
        region = rng.choice(REGIONS)
        members: list[tuple[str, date, str, str]] = []  # name, birth, sex, phone
        head_birth = self.birth(25, 70)
        head_phone = self.new_phone()
        members.append((surname + self.given_name(), head_birth, "男", head_phone))
        if size >= 2:
            members.append((rng.choice(SURNAMES) + self.given_name(), self.birth(25, 70), "女", self.new_phone()))
        kids = 0
        twins = rng.random() < 0.04
        while len(members) < size:
            if kids < 2 and head_birth.year + 22 < self.as_of.year:
                lo = 0
                hi = max(0, self.as_of.year - head_birth.year - 22)
                kb = self.birth(lo, min(hi, 30))
                sex = rng.choice("男女")
                age = (self.as_of.date() - kb).days // 365
                phone = self.new_phone() if age >= 16 and rng.random() < 0.8 else head_phone
                first = rng.choice(GIVEN)
                members.append((surname + first + rng.choice(GIVEN), kb, sex, phone))
                kids += 1
                if twins and len(members) < size:
                    # Twins: same birth day, same phone, names that share a character.
                    twin_name = surname + first + rng.choice([c for c in GIVEN if c != members[-1][0][-1]])
                    members.append((twin_name, kb, rng.choice("男女"), phone))
                    twins = False
            else:
                eb = self.birth(62, 96)
                phone = self.new_phone() if rng.random() < 0.5 else head_phone
                members.append((rng.choice(SURNAMES) + self.given_name(), eb, rng.choice("男女"), phone))
        if rng.random() < 0.01 and members:
            n, b, s, p = members[0]
            members[0] = (rng.choice(DOT_NAMES), b, s, p)
        start = len(self.people)
        hh = list(range(start, start + len(members)))
        for name, b, sex, phone in members:
            idx = len(self.people)
            age = (self.as_of.date() - b).days // 365
            id_type = "居民身份证"
            number = self.new_id(b, sex, region if rng.random() < 0.7 else None)
            roster_id = number
            r = rng.random()
            if r < 0.005:
                id_type, number = "护照", "E" + "".join(rng.choice("0123456789") for _ in range(8))
                roster_id = number
            elif r < 0.01:
                id_type, number = "港澳居民来往内地通行证", "H" + "".join(rng.choice("0123456789") for _ in range(8))
                roster_id = number
            elif age >= 60 and rng.random() < 0.08:
                roster_id = number[:6] + number[8:17]  # legacy 15-digit ID on an old resident's roster row
            elif rng.random() < 0.02:
                roster_id = ""  # never recorded on the roster
            status = rng.choices(("在住", "外出", "迁出", "死亡"), weights=(90, 5, 3, 2 if age >= 60 else 0.1))[0]
            tags = []
            if age >= 80:
                tags.append("高龄")
            if rng.random() < (0.06 if age >= 70 else 0.003):
                tags.append("卧床")
            if rng.random() < 0.02:
                tags.append("残疾")
            if sex == "女" and 22 <= age <= 38 and rng.random() < 0.04:
                tags.append("孕妇")
            if rng.random() < 0.01:
                tags.append("禁忌症")
            self.people.append(_Person(
                resident_id=f"R{self.part.residents + idx + 1:08d}", name=name, id_type=id_type, id_number=number, roster_id=roster_id,
                phone=phone, birth=b, sex=sex, address=address, street=street, community=community,
                grid_id=grid_id, grid_worker=worker, grid_worker_phone=worker_phone, status=status,
                tags=";".join(tags), household=hh,
            ))
        return len(members)

    # --- noise ------------------------------------------------------------------------------------
    def noisy_id(self, p: _Person, noise: list[str], child: bool) -> str:
        rng, r = self.rng, NOISE_RATES
        s = p.id_number
        if rng.random() < (r["id_missing_child"] if child else r["id_missing"]):
            noise.append("id_missing")
            return ""
        if p.id_type != "居民身份证":
            return s
        if child and rng.random() < r["id_parent_on_child"]:
            adults = [self.people[i] for i in p.household
                      if (self.as_of.date() - self.people[i].birth).days > 22 * 365 and self.people[i].id_number]
            if adults:
                noise.append("id_parent_on_child")
                return rng.choice(adults).id_number
        if rng.random() < r["id_masked"]:
            noise.append("id_masked")
            return s[:6] + "*" * 8 + s[-4:]
        if rng.random() < r["id_excel_mangled"]:
            noise.append("id_excel_mangled")
            return f"{float(s[:17]) * 10:.8E}".replace("E+", "E+")
        if rng.random() < r["id_digit_typo"]:
            i = rng.randrange(0, 17)
            s = s[:i] + rng.choice([d for d in "0123456789" if d != s[i]]) + s[i + 1:]
            noise.append("id_digit_typo")
        elif rng.random() < r["id_transposition"]:
            i = rng.randrange(0, 16)
            if s[i] != s[i + 1]:
                s = s[:i] + s[i + 1] + s[i] + s[i + 2:]
                noise.append("id_transposition")
        if s.endswith("X") and rng.random() < r["id_lower_x"]:
            s = s[:-1] + "x"
            noise.append("id_lower_x")
        if rng.random() < r["id_spaces"]:
            s = f"{s[:6]} {s[6:14]} {s[14:]}"
            noise.append("id_spaces")
        return s

    def noisy_name(self, p: _Person, noise: list[str]) -> str:
        rng, r = self.rng, NOISE_RATES
        name = p.name
        if "·" in name and rng.random() < r["name_dot_variant"]:
            name = name.replace("·", rng.choice(DOT_VARIANTS))
            noise.append("name_dot_variant")
        if any(ch in RARE for ch in name) and rng.random() < r["name_rare_char"]:
            name = "".join((rng.choice(("?", RARE_HOMOPHONE[ch])) if ch in RARE else ch) for ch in name)
            noise.append("name_rare_char")
        if rng.random() < r["name_homophone"]:
            from transforms.names import pinyin_key

            positions = [i for i in range(1, len(name)) if name[i] in _HOMOPHONES]
            if positions:
                i = rng.choice(positions)
                alts = [c for c in _HOMOPHONES[name[i]] if c != name[i]]
                if alts:
                    candidate = name[:i] + rng.choice(alts) + name[i + 1:]
                    if pinyin_key(candidate) == pinyin_key(name):
                        name = candidate
                        noise.append("name_homophone")
        if rng.random() < r["name_dialect"]:
            positions = [i for i in range(1, len(name)) if name[i] in _DIALECT]
            if positions:
                i = rng.choice(positions)
                name = name[:i] + rng.choice(_DIALECT[name[i]]) + name[i + 1:]
                noise.append("name_dialect")
        if rng.random() < r["name_char_dropped"] and len(name) == 3 and "·" not in name:
            name = name[:1] + name[rng.choice((1, 2))] if rng.random() < 0.5 else name[:2]
            noise.append("name_char_dropped")
        if rng.random() < r["name_traditional"]:
            trad = "".join(TRADITIONAL.get(ch, ch) for ch in name)
            if trad != name:
                name = trad
                noise.append("name_traditional")
        if rng.random() < r["name_pinyin_only"] and "·" not in name:
            from transforms.names import name_syllables

            syl = name_syllables(name)
            if "?" not in "".join(syl):
                name = (syl[0] + " " + "".join(syl[1:])).upper()
                noise.append("name_pinyin_only")
        if rng.random() < r["name_space"] and len(name) >= 2 and name.isascii() is False:
            name = name[0] + " " + name[1:]
            noise.append("name_space")
        return name

    def noisy_phone(self, p: _Person, noise: list[str]) -> str:
        rng, r = self.rng, NOISE_RATES
        if rng.random() < r["phone_missing"]:
            noise.append("phone_missing")
            return ""
        phone = p.phone
        if rng.random() < r["phone_family_member"] and len(p.household) > 1:
            other = self.people[rng.choice(p.household)]
            if other.phone != phone:
                phone = other.phone
                noise.append("phone_family_member")
        if rng.random() < r["phone_digit_typo"]:
            i = rng.randrange(3, 11)
            phone = phone[:i] + rng.choice([d for d in "0123456789" if d != phone[i]]) + phone[i + 1:]
            noise.append("phone_digit_typo")
        if rng.random() < r["phone_masked"] and len(phone) == 11:
            phone = phone[:3] + "****" + phone[7:]
            noise.append("phone_masked")
            return phone
        if rng.random() < r["phone_country_prefix"]:
            phone = rng.choice(("+86 ", "86", "+86-", "0086")) + phone
            noise.append("phone_country_prefix")
        return phone

    def noisy_address(self, p: _Person, noise: list[str]) -> str:
        rng, r = self.rng, NOISE_RATES
        if rng.random() < r["address_missing"]:
            return ""
        a = p.address
        if rng.random() < r["address_variant"]:
            noise.append("address_variant")
            a = a.replace(p.street, "").replace(p.community, "") if rng.random() < 0.7 else "深圳市南山区" + a
            choice = rng.randrange(4)
            if choice == 0:
                a = a.replace("栋", "号楼", 1)
            elif choice == 1:
                a = _cn_lane(a)
            elif choice == 2:
                import re

                a = re.sub(r"(\d+)栋(\d+)单元(\d+)$", r"\1-\2-\3", a)
            else:
                a = a + "室"
        return a

    # --- records ----------------------------------------------------------------------------------
    def record(self, p: _Person, noise: list[str], child: bool) -> dict[str, str]:
        return {
            "name": self.noisy_name(p, noise),
            "id_type": p.id_type if p.id_type != "居民身份证" or self.rng.random() < 0.5 else "",
            "id_number": self.noisy_id(p, noise, child),
            "phone": self.noisy_phone(p, noise),
        }

    def typed_time(self, at: datetime, fmt: str, noise: list[str]) -> str:
        rng, r = self.rng, NOISE_RATES
        if rng.random() < r["time_excel_serial"]:
            noise.append("time_excel_serial")
            return f"{(at - datetime(1899, 12, 30)).total_seconds() / 86400:.6f}"
        if rng.random() < r["time_unpadded"]:
            noise.append("time_unpadded")
            return f"{at.year}/{at.month}/{at.day} {at.hour}:{at.minute:02d}"
        return at.strftime(fmt)

    def stranger(self) -> _Person:
        """Someone not on the roster: a visitor, an unregistered tenant, or a namesake of a resident."""
        rng = self.rng
        b = self.birth(1, 85)
        sex = rng.choice("男女")
        host = rng.choice(self.people)
        name = host.name if rng.random() < 0.15 else rng.choice(SURNAMES) + self.given_name()
        phone = host.phone if rng.random() < 0.05 else self.new_phone()
        return _Person(
            resident_id="", name=name, id_type="居民身份证", id_number=self.new_id(b, sex), roster_id="",
            phone=phone, birth=b, sex=sex, address=rng.choice(self.people).address if rng.random() < 0.4 else "",
            street=host.street, community=host.community, grid_id="", grid_worker="", grid_worker_phone="",
            status="在住", tags="", household=[],
        )

    def build_tests(self) -> tuple[list[dict], list[dict], dict[str, bool]]:
        rng = self.rng
        rows: list[dict] = []
        truth: list[dict] = []
        tested: dict[str, bool] = {}
        window = int((self.as_of - self.since).total_seconds())

        def emit(p: _Person, at: datetime, resident: bool) -> None:
            noise: list[str] = []
            age = (self.as_of.date() - p.birth).days // 365
            rec = self.record(p, noise, child=age < 16)
            rid = f"T{self.part.tests + len(rows) + 1:011d}"
            rows.append({"record_id": rid, **rec, "sampled_at": self.typed_time(at, "%Y-%m-%d %H:%M:%S", noise),
                         "site": p.community + rng.choice(SITES), "address": self.noisy_address(p, noise)})
            truth.append({"record_id": rid, "resident_id": p.resident_id if resident else None,
                          "noise": ";".join(noise)})

        for p in self.people:
            in_scope = p.status == "在住"
            bedridden = "卧床" in p.tags
            prob = 0.86 if in_scope else 0.05
            if bedridden:
                prob = 0.5
            is_tested = rng.random() < prob
            tested[p.resident_id] = is_tested
            if is_tested:
                for _ in range(rng.choice((1, 1, 1, 2))):
                    emit(p, self.since + timedelta(seconds=rng.randrange(0, window)), True)
            if p.status != "死亡" and rng.random() < 0.35:
                emit(p, self.since - timedelta(days=rng.randrange(1, 10), seconds=rng.randrange(0, 86400)), True)
            if rng.random() < 0.02:
                emit(p, self.as_of + timedelta(hours=rng.randrange(1, 20)), True)  # after as-of: not this round
        for _ in range(int(len(self.people) * 0.08)):
            emit(self.stranger(), self.since + timedelta(seconds=rng.randrange(0, window)), False)
        return rows, truth, tested

    def build_vaccinations(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng
        rows: list[dict] = []
        truth: list[dict] = []
        products = list(VACCINE_WEIGHTS)
        weights = list(VACCINE_WEIGHTS.values())
        for p in self.people:
            age = (self.as_of.date() - p.birth).days // 365
            if age < 3 or rng.random() < 0.08 or "禁忌症" in p.tags and rng.random() < 0.9:
                continue
            product = rng.choices(products, weights=weights)[0]
            series = VACCINES[product]
            planned = rng.choices((1, 2, 3, 4), weights=(10, 20, 30, 40))[0]
            day = date(2021, 3, 1) + timedelta(days=rng.randrange(0, 340))
            doses: list[tuple[date, str]] = []
            for k in range(planned):
                if k > 0:
                    gap = series.interval_days + rng.randrange(0, 60) if k < series.doses else 180 + rng.randrange(0, 150)
                    day = day + timedelta(days=gap)
                if k >= series.doses + 1:
                    break
                if day > self.as_of.date() + timedelta(days=30):
                    break
                maker = product if k < series.doses else rng.choice(products)
                doses.append((day, maker))
            for day, maker in doses:
                noise: list[str] = []
                rec = self.record(p, noise, child=age < 16)
                shown = maker
                if rng.random() < NOISE_RATES["vaccine_alias"]:
                    shown = ALIASES[maker]
                    noise.append("vaccine_alias")
                rid = f"V{self.part.vaccinations + len(rows) + 1:011d}"
                at = datetime.combine(day, datetime.min.time()) + timedelta(hours=rng.randrange(8, 18))
                rows.append({"record_id": rid, **rec, "vaccinated_at": self.typed_time(at, "%Y-%m-%d %H:%M", noise),
                             "dose": str(doses.index((day, maker)) + 1), "vaccine": shown,
                             "site": p.street + "社区卫生服务中心"})
                truth.append({"record_id": rid, "resident_id": p.resident_id, "noise": ";".join(noise)})
        return rows, truth


def broken_rows(rows: list[dict], time_col: str, rng: random.Random, truth: list[dict]) -> None:
    """Rows no matcher can use: an unreadable time, a blank name. Marked in the truth's noise column."""
    for row, t in zip(rows, truth, strict=True):
        r = rng.random()
        if r < NOISE_RATES["row_bad_time"]:
            row[time_col] = rng.choice(("2022-13-45 25:00", "昨天下午", "#VALUE!"))
            t["noise"] = ";".join(x for x in (t["noise"], "row_bad_time") if x)
        elif r < NOISE_RATES["row_bad_time"] + NOISE_RATES["row_missing_name"]:
            row["name"] = ""
            t["noise"] = ";".join(x for x in (t["noise"], "row_missing_name") if x)


def _cn_lane(address: str) -> str:
    import re

    def to_cn(m: re.Match) -> str:
        n = int(m.group(1))
        if n < 10:
            text = CN_DIGITS[n]
        elif n < 20:
            text = "十" + (CN_DIGITS[n % 10] if n % 10 else "")
        elif n < 100:
            text = CN_DIGITS[n // 10] + "十" + (CN_DIGITS[n % 10] if n % 10 else "")
        else:
            return m.group(0)
        return text + m.group(2)

    return re.sub(r"(\d+)(巷|栋)", to_cn, address, count=1)


def _homophones() -> dict[str, list[str]]:
    from collections import defaultdict

    from pypinyin import lazy_pinyin

    pool = GIVEN + "玮维薇卫威方纳民静晶婧靖莉利蔷雷蕾君均俊骏扬咏雁洁捷涓鹃韬滔铭鸣朝潮绣夏侠苹钢贵骅桦钰煜岚" \
        "宏鸿虹美玫菲欣新馨心博彬滨雨羽昊皓恺铠建剑凡旭煦凝隆琳霖麟焕晖鹏朋辰琛亭庭莹盈惠蕙嘉家宜仪斯诗宣轩紫晗寒冉" \
        "杭雯闻则依瑞毫小孝冬栋纯得星智诚城锋丰"
    groups: dict[str, list[str]] = defaultdict(list)
    for ch in dict.fromkeys(pool):
        groups[lazy_pinyin(ch)[0]].append(ch)
    return {ch: g for g in groups.values() if len(g) > 1 for ch in g}


_HOMOPHONES = _homophones()


def _dialect_confusions() -> dict[str, list[str]]:
    """Characters whose readings differ only by n/l, f/h(u) or a final -n/-ng: what a speaker who merges
    them types with a pinyin input method."""
    from collections import defaultdict

    from pypinyin import lazy_pinyin

    pool = GIVEN + "玲灵凌岭宁柠南兰澜男岚能楞农龙牛刘妮丽莉黎尼年连莲辉晖徽飞菲非芳方欢帆凡环宏红峰丰" \
        "风凤锋烽福胡虎斌冰彬滨民明敏铭珍真振正诚晨成辰琴清勤庆金晶锦京欣馨星兴新心云勇润荣君军俊"

    def swap(p: str) -> set[str]:
        out = set()
        if p.startswith("n"):
            out.add("l" + p[1:])
        if p.startswith("l"):
            out.add("n" + p[1:])
        if p.startswith("f"):
            out.add("hu" + p[1:])
        if p.startswith("hu"):
            out.add("f" + p[2:])
        if p.endswith("ng"):
            out.add(p[:-1])
        elif p.endswith("n"):
            out.add(p + "g")
        return out

    by_reading: dict[str, list[str]] = defaultdict(list)
    for ch in dict.fromkeys(pool):
        by_reading[lazy_pinyin(ch)[0]].append(ch)
    out: dict[str, list[str]] = {}
    for reading, chars in by_reading.items():
        others = [c for alt in swap(reading) for c in by_reading.get(alt, [])]
        for ch in chars:
            if others:
                out[ch] = others
    return out


_DIALECT = _dialect_confusions()


def generate(
    residents: int, seed: int, as_of: datetime = datetime(2022, 5, 20, 18, 0), *, grid_size: int | None = None,
    part: Part | None = None,
) -> Synthetic:
    """grid_size defaults to about 120 residents for small samples (several communities to look at) and
    300 at city scale, roughly a real grid's households. With part, this is one more part of a city
    (see Part), which is advanced past what was generated."""
    part = part or Part()
    gen = _Generator(residents, seed, as_of, grid_size or (120 if residents < 20_000 else 300), part)
    gen.build_roster()
    roster = pl.DataFrame(
        [
            {"resident_id": p.resident_id, "name": p.name, "id_type": p.id_type, "id_number": p.roster_id,
             "phone": p.phone, "birth_date": p.birth.isoformat() if gen.rng.random() < 0.6 else "",
             "gender": p.sex, "address": p.address, "street": p.street, "community": p.community,
             "grid_id": p.grid_id, "grid_worker": p.grid_worker, "grid_worker_phone": p.grid_worker_phone,
             "status": p.status if p.status != "在住" or gen.rng.random() < 0.9 else "", "tags": p.tags}
            for p in gen.people
        ]
    )
    test_rows, test_truth, tested = gen.build_tests()
    vacc_rows, vacc_truth = gen.build_vaccinations()
    truth_residents = pl.DataFrame(
        {
            "resident_id": [p.resident_id for p in gen.people],
            "status": [p.status for p in gen.people],
            "tags": [p.tags for p in gen.people],
            "birth_date": [p.birth for p in gen.people],
            "tested_in_round": [tested[p.resident_id] for p in gen.people],
        }
    )
    schema = {"record_id": pl.String, "resident_id": pl.String, "noise": pl.String}
    broken_rows(test_rows, "sampled_at", gen.rng, test_truth)
    broken_rows(vacc_rows, "vaccinated_at", gen.rng, vacc_truth)
    dup = [i for i in range(roster.height) if gen.rng.random() < NOISE_RATES["row_duplicated"]]
    if dup:
        roster = pl.concat([roster, roster[dup]])
    part.residents += len(gen.people)
    part.tests += len(test_rows)
    part.vaccinations += len(vacc_rows)
    return Synthetic(
        roster=roster,
        tests=pl.DataFrame(test_rows),
        vaccinations=pl.DataFrame(vacc_rows),
        truth_residents=truth_residents,
        truth_tests=pl.DataFrame(test_truth, schema=schema),
        truth_vaccinations=pl.DataFrame(vacc_truth, schema=schema),
        since=gen.since,
        as_of=as_of,
    )
