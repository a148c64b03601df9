"""SQL for the two linking stages, as named steps; the flow's database executor runs them.

Stage 1 (exact): a record whose checked ID is unique on the roster and whose name reads the same.
Stage 2 (blocking): every other record gets candidates from bounded blocks (near-ID neighbours, phone,
pinyin name with birth date or building, rare pinyin name alone). Blocks that are too big to mean
anything (a grid worker's phone used for a whole building) are skipped, so no step is ever all-pairs.

Tables read: `residents` and `records`, both with the identity columns of transforms.normalise, each row
numbered: `_ri`, a resident's rank by resident_id; `_li`, a record's row in its batch
(transforms.pair_decisions numbers both). Pairs are carried as these two integers from the first join to
the last, so grouping and ranking millions of pairs hash two integers, not three strings.
Table written: `candidate_pairs`, one row per (_li, _ri) with the stage and the blocking rules that
proposed it (as bits, RULE_NAMES). Each address's family, which the comparison reads, is grouped by
transforms.pair_decisions.households.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import polars as pl

from transforms.idcard import CHECK_CHARS, ID_MASKED, ID_OK, ID_UPGRADED, WEIGHTS


@dataclass(frozen=True)
class BlockingSettings:
    max_phone_block: int = 8  # more residents on one phone than a household: not evidence of identity
    max_name_block: int = 30  # a pinyin name this common is searched only with a birth date or building
    max_candidates: int = 40  # per record, keeping those that most rules proposed
    pairs_per_chunk: int = 250_000  # candidate pairs compared at once (bounds memory; 1M costs 1.3 GiB more at 1M residents)
    # Records through the exact stage at once (bounds DuckDB's and the pairs' memory): each batch probes the
    # roster's unique IDs again, about 0.4 s at 20M residents whatever the batch's size.
    records_per_batch: int = 3_000_000
    # Records the exact stage left, blocked at once: each batch joins the whole roster nine times, about 4.4 s
    # at 20M residents whatever the batch's size (then 3.6 s a million records), and its pairs are held as
    # numbers until a slice is compared (about 8.5 pairs a record: 36 M pairs for 4.25 M records).
    pending_per_batch: int = 4_500_000

    def fingerprint(self) -> dict:
        """What a decision depends on: the sizes only bound memory, they never change a decision."""
        return {k: v for k, v in asdict(self).items() if k not in _SIZES}


_SIZES = ("pairs_per_chunk", "records_per_batch", "pending_per_batch")


# The blocking rules, in the order of their bits: a pair carries the rules that proposed it as the bits of an
# integer (bit i: RULE_NAMES[i]) from the SQL to the decision, which names them only for the pairs it keeps.
RULE_NAMES = ("household", "id", "id_other", "loose_name_birth", "masked_id", "name", "name_birth", "name_building",
              "phone")


def rule_text(bits: pl.Expr) -> pl.Expr:
    """The names of the rules whose bits are set, joined by '+' (as `method` shows them after 'fuzzy:')."""
    return bits.replace_strict(_rule_texts(), return_dtype=pl.String)


@functools.cache
def _rule_texts() -> dict[int, str]:
    return {bits: "+".join(n for i, n in enumerate(RULE_NAMES) if bits >> i & 1) for bits in range(1 << len(RULE_NAMES))}


@dataclass(frozen=True)
class SqlStep:
    name: str
    sql: str


def _unique_residents() -> SqlStep:
    """The residents whose checked ID no one else on the roster has, with the name the exact stage asks for:
    made once a run, so each batch's exact stage is one join (at 20M residents, joining a batch with the
    unique IDs and then the roster again took 0.73 s a batch of a million records; this, 0.42)."""
    return SqlStep(
        "unique_residents",
        """CREATE OR REPLACE TEMP TABLE unique_residents AS
SELECT id_norm, min(name_py) AS name_py, min(_ri) AS _ri FROM residents WHERE id_norm IS NOT NULL
GROUP BY id_norm HAVING count(*) = 1""",
    )


def _exact_records() -> list[SqlStep]:
    exact = SqlStep(
        "exact_links",
        """CREATE OR REPLACE TEMP TABLE exact_links AS
SELECT r._li, u._ri FROM records r JOIN unique_residents u ON r.id_norm = u.id_norm AND r.name_py = u.name_py""",
    )
    pending = SqlStep(
        "exact_pending",
        """CREATE OR REPLACE TEMP TABLE exact_pending AS
SELECT r._li FROM records r ANTI JOIN exact_links e ON r._li = e._li""",
    )
    return [exact, pending]


def _id_neighbours_sql(source: str, keys: str) -> str:
    """Every single-character substitution and adjacent transposition of each id_body in source, as probe."""
    return f"""SELECT {keys}, substr(id_body, 1, i) || d || substr(id_body, i + 2) AS probe
FROM {source}, (SELECT range AS i FROM range(0, 18)),
     (SELECT unnest(['0','1','2','3','4','5','6','7','8','9','X']) AS d)
WHERE d <> substr(id_body, i + 1, 1) AND (d <> 'X' OR i = 17)
UNION ALL
SELECT {keys},
       substr(id_body, 1, i) || substr(id_body, i + 2, 1) || substr(id_body, i + 1, 1) || substr(id_body, i + 3)
FROM {source}, (SELECT range AS i FROM range(0, 17))
WHERE substr(id_body, i + 1, 1) <> substr(id_body, i + 2, 1)"""


# An ID body whose neighbours can be computed from its check: 17 digits and a check character.
_CHECKABLE = r"regexp_full_match(id_body, '[0-9]{17}[0-9X]')"


def _checked_id_neighbours_sql(source: str, keys: str) -> str:
    """Of the neighbours _id_neighbours_sql gives for each body in source (all _CHECKABLE), only those whose
    check character holds (ISO 7064 MOD 11-2, transforms.idcard), computed rather than generated and
    filtered: changing digit i by t changes the weighted sum by WEIGHTS[i] * t, so at most one digit per
    position makes the sum agree with the check character again, and a swap of neighbours either does or
    does not. About 20 probes per body instead of about 200."""
    digit = "TRY_CAST(substr(id_body, {k}, 1) AS INTEGER)"
    total = " + ".join(f"{w} * {digit.format(k=i + 1)}" for i, w in enumerate(WEIGHTS))
    # i, WEIGHTS[i], its inverse mod 11, WEIGHTS[i + 1] (0 past the body)
    positions = ", ".join(f"({i}, {w}, {pow(w, -1, 11)}, {WEIGHTS[i + 1] if i + 1 < len(WEIGHTS) else 0})"
                          for i, w in enumerate(WEIGHTS))
    mod = "((({x}) % 11 + 11) % 11)"  # DuckDB's % keeps the sign of the dividend
    return f"""SELECT {keys}, probe FROM (
WITH b AS (
    SELECT {keys}, id_body, strpos('{CHECK_CHARS}', substr(id_body, 18, 1)) - 1 AS target, ({total}) % 11 AS s
    FROM {source}),
digits AS (
    SELECT b.*, p.i, p.w, p.w_inv, p.w_next, TRY_CAST(substr(id_body, p.i + 1, 1) AS INTEGER) AS a,
           TRY_CAST(substr(id_body, p.i + 2, 1) AS INTEGER) AS a_next
    FROM b, (VALUES {positions}) p(i, w, w_inv, w_next)),
-- the digit at i that makes the sum agree with the check character (10: none does)
d AS (SELECT *, {mod.format(x="a + (target - s) * w_inv")} AS fit FROM digits)
-- a digit i (0-16) changed into that one
SELECT {keys}, substr(id_body, 1, i) || CAST(fit AS VARCHAR) || substr(id_body, i + 2) AS probe
FROM d WHERE fit <= 9 AND s <> target
UNION ALL
-- the check character changed into the one the digits give
SELECT {keys}, substr(id_body, 1, 17) || substr('{CHECK_CHARS}', s + 1, 1) FROM b WHERE s <> target
UNION ALL
-- two neighbouring digits (i, i + 1 < 17) swapped
SELECT {keys}, substr(id_body, 1, i) || substr(id_body, i + 2, 1) || substr(id_body, i + 1, 1) || substr(id_body, i + 3)
FROM d WHERE i < 16 AND a <> a_next AND {mod.format(x="s + (w - w_next) * (a_next - a)")} = target
UNION ALL
-- the last digit and a check character that is a digit swapped
SELECT {keys}, substr(id_body, 1, 16) || substr(id_body, 18, 1) || substr(id_body, 17, 1)
FROM d WHERE i = 16 AND a_next IS NOT NULL AND a <> a_next
    AND substr('{CHECK_CHARS}', {mod.format(x="s + w * (a_next - a)")} + 1, 1) = substr(id_body, 17, 1)
)"""


def blocking_sql(settings: BlockingSettings) -> tuple[list[SqlStep], list[SqlStep]]:
    """The steps that read the roster alone, and those run for each batch of pending records."""
    # ISO 7064 MOD 11-2 catches every single-digit substitution and every adjacent transposition, so of two
    # IDs one such typo apart at most one passes the check. Only an ID that fails it needs its neighbours,
    # met with the other side's IDs: a resident's, all ~200 (resident_id_probes), with every record's ID; a
    # record's with the residents' IDs that pass the check (a resident's that fails is met from its side),
    # so only the neighbours that pass, about 20 (id_probes). A 15-digit ID upgraded passes by construction
    # (its check character is computed on upgrade): an upgraded resident needs none. Views, not tables: the
    # probes stream into the joins.
    id_probes = SqlStep(
        "id_probes",
        f"""CREATE OR REPLACE TEMP VIEW id_probes AS
WITH src AS (SELECT _li, id_body, id_flag FROM pending_records WHERE id_body IS NOT NULL AND id_flag <> '{ID_MASKED}')
{_checked_id_neighbours_sql(f"(SELECT _li, id_body FROM src WHERE id_flag <> '{ID_OK}' AND {_CHECKABLE})", "_li")}
UNION ALL
{_id_neighbours_sql(f"(SELECT _li, id_body FROM src WHERE id_flag <> '{ID_OK}' AND NOT {_CHECKABLE})", "_li")}
UNION ALL
SELECT _li, id_body FROM src""",
    )
    resident_probes = SqlStep(
        "resident_id_probes",
        f"""CREATE OR REPLACE TEMP VIEW resident_id_probes AS
{_id_neighbours_sql(f"(SELECT _ri, id_body FROM residents WHERE id_body IS NOT NULL AND id_flag NOT IN ('{ID_OK}', '{ID_MASKED}', '{ID_UPGRADED}'))", "_ri")}""",
    )
    phone_ok = SqlStep(
        "phone_keys",
        f"""CREATE OR REPLACE TEMP TABLE phone_keys AS
SELECT phone_norm FROM residents WHERE phone_flag = 'mobile'
GROUP BY phone_norm HAVING count(*) <= {settings.max_phone_block}""",
    )
    # Where each usable phone lives: the household rule's first step, made once a run rather than grouped
    # from the whole roster for every batch (at 20M residents 3.05 -> 0.71 s a batch of 900,000 records).
    phone_households = SqlStep(
        "phone_households",
        """CREATE OR REPLACE TEMP TABLE phone_households AS
SELECT DISTINCT h.phone_norm, h.addr_canon FROM residents h SEMI JOIN phone_keys k ON h.phone_norm = k.phone_norm
WHERE h.addr_canon IS NOT NULL""",
    )
    name_ok = SqlStep(
        "name_keys",
        f"""CREATE OR REPLACE TEMP TABLE name_keys AS
SELECT name_py FROM residents WHERE name_py IS NOT NULL
GROUP BY name_py HAVING count(*) <= {settings.max_name_block}""",
    )
    rules = {
        "id": "SELECT q._li, p._ri FROM id_probes q "
        "JOIN residents p ON p.id_body = q.probe UNION ALL "
        "SELECT r._li, q._ri FROM resident_id_probes q "
        "JOIN pending_records r ON r.id_body = q.probe WHERE r.id_flag <> 'masked'",
        "id_other": "SELECT r._li, p._ri FROM pending_records r "
        "JOIN residents p ON p.id_norm = r.id_norm WHERE r.id_body IS NULL",
        "phone": "SELECT r._li, p._ri FROM pending_records r "
        "JOIN phone_keys k ON r.phone_norm = k.phone_norm JOIN residents p ON p.phone_norm = r.phone_norm",
        # A relative's phone leads to the household; the name then says which member it is.
        "household": "SELECT r._li, p._ri FROM pending_records r "
        "JOIN phone_households h ON h.phone_norm = r.phone_norm JOIN residents p ON p.addr_canon = h.addr_canon",
        # A privacy-masked ID still shows region and the last four: with the name, a narrow block. (Its
        # region is 6 characters, transforms.idcard: the roster's side is tested with starts_with, so only
        # one of its two ends is cut out of every resident's ID per batch: 1.05 -> 0.71 s at 20M.)
        "masked_id": "SELECT r._li, p._ri FROM (SELECT _li, name_py_loose, substr(id_body, 1, 6) AS region, "
        "substr(id_body, 15, 4) AS tail FROM pending_records WHERE id_flag = 'masked') r "
        "JOIN residents p ON p.name_py_loose = r.name_py_loose AND substr(p.id_body, 15, 4) = r.tail "
        "AND starts_with(p.id_body, r.region)",
        "name_birth": "SELECT r._li, p._ri FROM pending_records r "
        "JOIN residents p ON p.name_py = r.name_py AND p.birth = r.id_birth_raw",
        "loose_name_birth": "SELECT r._li, p._ri FROM pending_records r "
        "JOIN residents p ON p.name_py_loose = r.name_py_loose AND p.birth = r.id_birth_raw",
        "name_building": "SELECT r._li, p._ri FROM pending_records r "
        "JOIN residents p ON p.name_py = r.name_py AND p.addr_block = r.addr_block",
        "name": "SELECT r._li, p._ri FROM pending_records r "
        "JOIN name_keys k ON r.name_py = k.name_py JOIN residents p ON p.name_py = r.name_py",
    }
    # A pair's rules are gathered as bits of an integer (RULE_NAMES) and named only for the pairs a decision
    # keeps: a list(DISTINCT ... ORDER BY ...) per pair cost more than all the joins together, and a list of
    # names per pair, fetched, sorted and sliced with it, more than comparing the pair.
    assert sorted(rules) == list(RULE_NAMES)
    union = "\nUNION ALL\n".join(f"SELECT *, {1 << RULE_NAMES.index(rule)} AS bit FROM ({sql})"
                                 for rule, sql in rules.items())
    proposals = SqlStep(
        "blocked_pairs",
        f"""CREATE OR REPLACE TEMP TABLE blocked_pairs AS
SELECT _li, _ri, bit_or(bit)::USMALLINT AS rule_bits FROM ({union}) GROUP BY _li, _ri
QUALIFY row_number() OVER (PARTITION BY _li ORDER BY bit_count(rule_bits) DESC, _ri) <= {settings.max_candidates}""",
    )
    pending = SqlStep("pending_records", "CREATE OR REPLACE TEMP VIEW pending_records AS SELECT * FROM records")
    return [resident_probes, phone_ok, phone_households, name_ok], [pending, id_probes, proposals]


def candidate_pairs_sql(stage: str) -> SqlStep:
    """One stage's pairs as keys only: the identity columns are joined on in slices when compared
    (transforms.pair_decisions), so millions of wide rows never sit in the database at once."""
    source, bits = {"exact": ("exact_links", "0::USMALLINT"), "blocking": ("blocked_pairs", "rule_bits")}[stage]
    return SqlStep(
        "candidate_pairs",
        f"""CREATE OR REPLACE TEMP TABLE candidate_pairs AS
SELECT _li, _ri, '{stage}' AS stage, {bits} AS rule_bits FROM {source}""",
    )


def roster_keys_sql(settings: BlockingSettings) -> list[SqlStep]:
    """What the roster alone decides (unique IDs, usable phones and where they live, usable names): built
    once per run, whatever the number of record batches."""
    return [_unique_residents(), *blocking_sql(settings)[0]]


def exact_stage_sql() -> list[SqlStep]:
    """Run once per batch of `records`: candidate_pairs then holds the batch's exact-stage pairs, and
    exact_pending (_li) the records the exact stage did not settle, for the blocking stage."""
    return [*_exact_records(), candidate_pairs_sql("exact")]


def blocking_stage_sql(settings: BlockingSettings) -> list[SqlStep]:
    """Run once per batch of pending `records` (every record exposed is one the exact stage left):
    candidate_pairs then holds their blocked pairs. The flow gathers the pending records of every batch
    before blocking them, so the whole roster is joined once per million pending records rather than once
    per million records (at 5M residents, 4 times instead of 18). A record's pairs depend on the record
    and the roster, never on the other records of its batch."""
    return [*blocking_sql(settings)[1], candidate_pairs_sql("blocking")]
