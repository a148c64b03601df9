"""Row-level validation against the contract: raw text cells in, typed rows and quarantined rows out.

Every input row leaves here in exactly one of the two frames, carrying its source line number, so the
data staff can find it in the file they dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from transforms.contract import (
    DOSE_RANGE,
    EARLIEST_BIRTH,
    EARLIEST_EVENT,
    VACCINE_ALIASES,
    Contract,
    Kind,
    Role,
)

LINE = "_line"
CARRIED = ("_file",)  # which stored file a row came from, when rows come from the inbox store
REASON = "reason"
CHECK = "expectation"  # the contract expectation a quarantined row failed, e.g. expect_column_values_to_not_be_null(name)
QUARANTINE_COLUMNS = [LINE, REASON, CHECK]
_POSITION = "_position"  # a row's place in the slice parsed

_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y%m%d%H%M%S", "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M",
)
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")
_GENDER_ALIASES = {"男性": "男", "女性": "女", "M": "男", "F": "女", "m": "男", "f": "女", "1": "男", "2": "女"}
_TAG_SPLIT = r"[;；,，、/ ]+"


def _check(what: str, column: str) -> str:
    return f"expect_column_values_to_{what}({column})"


@dataclass(frozen=True)
class AsOfWindow:
    """The as-of times [lo, hi) under which rows parse exactly as they did (naive local times; None: unbounded).

    Parsing compares event times and birth dates with the end of the round, so a file read again under a
    later as-of is the same parse only when no value lies between the two: a scheduled refresh moves its
    as-of every two hours, and an unchanged roster or vaccination export need not be parsed again for that
    (flows.loaded_sources). A row quarantined for an event after the round names the round's end to the
    minute, which pins the window to that minute."""

    lo: datetime | None = None
    hi: datetime | None = None

    def holds(self, as_of: datetime) -> bool:
        at = as_of.replace(tzinfo=None)
        return (self.lo is None or self.lo <= at) and (self.hi is None or at < self.hi)

    def __and__(self, other: AsOfWindow) -> AsOfWindow:
        return AsOfWindow(_bound(max, self.lo, other.lo), _bound(min, self.hi, other.hi))


def _bound(pick, a, b):
    return a if b is None else b if a is None else pick(a, b)


def _as_datetime(value: date | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value, datetime.min.time())


def _as_of_window(frame: pl.DataFrame, compared: dict[str, bool], latest: datetime | None) -> AsOfWindow:
    """compared: the scratch columns compared with the round's end, each True when it holds dates (compared by
    day). A date column's window is whole days: a birth on day d is plausible for every as-of on or after d."""
    if latest is None:
        return AsOfWindow(datetime.min, datetime.min)  # parsed without a round's end: holds for none
    window = AsOfWindow()
    if not compared:
        return window
    aggs = []
    for name, by_day in compared.items():
        limit = pl.lit(latest.date()) if by_day else pl.lit(latest)
        aggs += [pl.col(name).filter(pl.col(name) <= limit).max().alias(f"{name}.lo"),
                 pl.col(name).filter(pl.col(name) > limit).min().alias(f"{name}.hi")]
    bounds = frame.select(aggs).row(0, named=True)
    for name, by_day in compared.items():
        lo, hi = _as_datetime(bounds[f"{name}.lo"]), _as_datetime(bounds[f"{name}.hi"])
        window &= AsOfWindow(lo, hi)
        if hi is not None and not by_day:  # its quarantine reason names the round's end to the minute
            minute = latest.replace(second=0, microsecond=0)
            window &= AsOfWindow(minute, minute + timedelta(minutes=1))
    return window


@dataclass(frozen=True)
class Parsed:
    rows: pl.DataFrame
    quarantine: pl.DataFrame
    # Values that were only suspicious: kept, blanked where unusable, and counted for run.json.
    notes: dict[str, int] = field(default_factory=dict)
    window: AsOfWindow = field(default_factory=AsOfWindow)


def _datetime_candidates(c: pl.Expr) -> list[tuple[pl.Expr, int]]:
    """Every way a time cell is read, in order of preference (the first that reads a cell wins), each with
    the number of colons a cell it reads holds."""
    # No cache of the distinct cells: nearly every time is distinct, and building it cost a third of a read.
    candidates = [(c.str.to_datetime(f, strict=False, time_unit="us", cache=False), f.count(":"))
                  for f in _DATETIME_FORMATS]
    candidates += [(c.str.to_date(f, strict=False, cache=False).cast(pl.Datetime("us")), 0) for f in _DATE_FORMATS]
    # A date cell exported as its Excel serial number (days since 1899-12-30, time as the fraction).
    serial = pl.when(c.str.contains(r"^\d{5}(\.\d+)?$")).then(c.cast(pl.Float64, strict=False))
    excel = pl.lit(datetime(1899, 12, 30)).cast(pl.Datetime("us")) + pl.duration(
        seconds=(serial * 86400).round(0).cast(pl.Int64))
    return [*candidates, (excel, 0)]


def _date_candidates(c: pl.Expr) -> list[tuple[pl.Expr, int | None]]:
    """Every way a date cell is read; any time in it is cut off first, so a candidate is tried on a cell
    whatever its colons (None)."""
    c = c.str.replace(r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", "")
    return [(c.str.to_date(f, strict=False, cache=False), None) for f in _DATE_FORMATS]


def parse_datetime_expr(col: str) -> pl.Expr:
    return pl.coalesce(e for e, _ in _datetime_candidates(pl.col(col)))


def parse_date_expr(col: str) -> pl.Expr:
    return pl.coalesce(e for e, _ in _date_candidates(pl.col(col)))


def _first_reading(values: pl.Series, candidates: list[tuple[pl.Expr, int | None]], dtype: pl.DataType) -> pl.Series:
    """What pl.coalesce(candidates) gives, but each candidate after the first reads only the cells the
    earlier ones left unread: an export keeps to one format nearly throughout, and trying every format on
    every cell cost 3 s per million cells, twenty times the one format that reads them. Nor is a format tried
    on cells with another number of colons than its own, which it cannot read (a literal in a format must be
    in the cell; exact, as polars reads by default): a format that reads no cell took four times as long as
    one that reads them all, and a vaccination export's times have no seconds."""
    out = pl.repeat(None, values.len(), dtype=dtype, eager=True).alias(values.name)
    unread = values.is_not_null()
    colons = values.str.count_matches(":", literal=True) if any(w is not None for _, w in candidates) else None
    for candidate, wanted in candidates:
        if not unread.any():
            break
        tried = (unread if wanted is None else unread & (colons == wanted)).arg_true()
        if tried.len() == 0:
            continue
        read = pl.DataFrame({"v": values.gather(tried)}).select(candidate.alias("v")).to_series()
        hit = read.is_not_null()
        if hit.any():
            out = out.scatter(tried.filter(hit), read.filter(hit))
            unread = unread.scatter(tried.filter(hit), False)
    return out


def parse_datetimes(values: pl.Series) -> pl.Series:
    return _first_reading(values, _datetime_candidates(pl.col("v")), pl.Datetime("us"))


def parse_dates(values: pl.Series) -> pl.Series:
    return _first_reading(values, _date_candidates(pl.col("v")), pl.Date)


def parse_rows(raw: pl.DataFrame, contract: Contract, as_of: datetime | None = None,
               earlier: pl.DataFrame | None = None) -> Parsed:
    """raw: one String column per contract column present in the file, plus LINE (1-based, as the
    spreadsheet shows it). Missing optional columns are added as nulls.

    earlier: when a file is parsed a slice at a time, the unique key and LINE of the rows kept from the
    slices before this one (first_keys), so a key met again in a later slice is a duplicate as it would be
    in the whole file.

    An event later than as_of, or before testing began, is a typing error that would silently count
    or not count: the row is quarantined so the staff see it. An implausible birth date only loses the
    date (age then comes from the ID); the resident stays on the roster."""
    carried = [LINE, *[c for c in CARRIED if c in raw.columns]]
    frame = raw.with_columns(
        [pl.lit(None, dtype=pl.String).alias(c) for c in contract.names if c not in raw.columns]
    ).select(*carried, *contract.names).with_row_index(_POSITION)
    # Blank-looking cells are missing values. Stripped first, as columns: inside one when/then each cell was
    # stripped twice.
    frame = frame.with_columns(pl.col(c).str.strip_chars() for c in contract.names).with_columns(
        pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in contract.names)
    problems: list[tuple[pl.Expr, str, str]] = []  # (row fails, reason in Chinese, expectation failed)
    typed: list[pl.Expr] = []
    notes: dict[str, pl.Expr] = {}
    scratch: list[str] = []
    compared: dict[str, bool] = {}  # scratch columns compared with the round's end (True: by day)
    latest = as_of.replace(tzinfo=None) if as_of is not None else None
    for col in contract.columns:
        c = pl.col(col.name)
        if col.default is not None:
            frame = frame.with_columns(c.fill_null(col.default))
        if col.name == "vaccine":
            frame = frame.with_columns(c.replace(VACCINE_ALIASES))
        if col.name == "gender":
            frame = frame.with_columns(c.replace(_GENDER_ALIASES))
        if col.required:
            problems.append((c.is_null(), f"缺少必填项：{col.zh}", _check("not_be_null", col.name)))
        if col.kind is Kind.DATETIME:
            # Parsed once into a scratch column: the problems and the typed value all read it.
            frame = frame.with_columns(parse_datetimes(frame[col.name]).alias(f"__{col.name}"))
            scratch.append(f"__{col.name}")
            parsed = pl.col(f"__{col.name}")
            problems.append((c.is_not_null() & parsed.is_null(), f"无法识别的时间：{col.zh}",
                             _check("be_parseable_as_time", col.name)))
            problems.append((parsed < pl.lit(datetime.combine(EARLIEST_EVENT, datetime.min.time())),
                             f"{col.zh}早于{EARLIEST_EVENT.year}年，疑为录入错误", _check("be_between", col.name)))
            if latest is not None:
                compared[f"__{col.name}"] = False
                problems.append((
                    parsed > pl.lit(latest),
                    f"{col.zh}晚于本轮截止时间（{latest:%Y-%m-%d %H:%M}），本轮不计；如为录入错误请更正后重新提交",
                    _check("be_between", col.name)))
            typed.append(parsed.alias(col.name))
        elif col.kind is Kind.DATE:
            frame = frame.with_columns(parse_dates(frame[col.name]).alias(f"__{col.name}"))
            scratch.append(f"__{col.name}")
            parsed = pl.col(f"__{col.name}")
            if col.role is not Role.BIRTH_DATE:
                problems.append((c.is_not_null() & parsed.is_null(), f"无法识别的日期：{col.zh}",
                                 _check("be_parseable_as_date", col.name)))
            else:
                upper = latest.date() if latest is not None else None
                compared[f"__{col.name}"] = True
                implausible = (parsed < pl.lit(EARLIEST_BIRTH)) | (
                    (parsed > pl.lit(upper)) if upper is not None else pl.lit(False)
                )
                notes[f"{col.name}_implausible"] = (c.is_not_null() & parsed.is_null()) | implausible
                parsed = pl.when(implausible).then(None).otherwise(parsed)
            typed.append(parsed.alias(col.name))
        elif col.kind is Kind.INT:
            # A dose number is informative only; an odd one is blanked, not a reason to lose the record.
            # Read once into a scratch column: the note and the typed value both read it.
            frame = frame.with_columns(c.str.extract(r"(\d+)", 1).cast(pl.Int32, strict=False).alias(f"__{col.name}"))
            scratch.append(f"__{col.name}")
            number = pl.col(f"__{col.name}")
            in_range = number.is_between(*DOSE_RANGE)
            notes[f"{col.name}_blanked"] = c.is_not_null() & ~in_range.fill_null(False)
            typed.append(pl.when(in_range).then(number).otherwise(None).alias(col.name))
        elif col.multi and col.allowed:
            tokens = c.str.replace_all(_TAG_SPLIT, ";").str.strip_chars(";").str.split(";")
            notes[f"{col.name}_unknown_dropped"] = tokens.list.eval(
                ~pl.element().is_in(list(col.allowed))).list.any().fill_null(False)
            typed.append(
                tokens.list.eval(pl.element().filter(pl.element().is_in(list(col.allowed))))
                .list.join(";")
                .alias(col.name)
            )
        elif col.allowed and col.name != "gender":
            problems.append((c.is_not_null() & ~c.is_in(list(col.allowed)),
                             f"{col.zh}不在允许值内（允许：{'、'.join(col.allowed)}）", _check("be_in_set", col.name)))
        elif col.name == "gender":
            typed.append(pl.when(c.is_in(list(col.allowed))).then(c).otherwise(None).alias(col.name))
    window = _as_of_window(frame, compared, latest)
    # Which problems each row has, as booleans; the reasons are written out only for the rows with one (a
    # few in a thousand): the text for every row cost more than the checks themselves.
    failing = [f"_problem{i}" for i in range(len(problems))]
    frame = frame.with_columns(bad.fill_null(False).alias(failing[i]) for i, (bad, _, _) in enumerate(problems))
    bad = pl.any_horizontal(failing) if failing else pl.lit(False)
    quarantine = frame.filter(bad).with_columns(
        pl.concat_str([pl.when(failing[i]).then(pl.lit(zh)) for i, (_, zh, _) in enumerate(problems)],
                      separator="；", ignore_nulls=True).alias(REASON),
        pl.concat_str([pl.when(failing[i]).then(pl.lit(exp)) for i, (_, _, exp) in enumerate(problems)],
                      separator=";", ignore_nulls=True).alias(CHECK),
    ).drop(failing)
    frame = frame.filter(~bad).drop(failing)
    if contract.unique_key:
        # Among otherwise good rows the first occurrence is kept, so a duplicate never hides the person.
        # Position, not line number, decides which is first: rows from several files share line numbers.
        key = contract.unique_key
        first = frame.select(pl.col(key).is_first_distinct()).to_series()
        before = None
        if earlier is not None and earlier.height:
            before = _earlier_with_keys_of(earlier, frame, key).select(key, pl.col(LINE).alias("_first"))
            first = first & ~frame[key].is_in(before[key].implode())
        dups = frame.filter(~first)
        frame = frame.filter(first)
        if dups.height:
            # Where each duplicate's key was first met: in an earlier slice, else in this one.
            seen = frame.filter(pl.col(key).is_in(dups[key].implode())).select(key, pl.col(LINE).alias("_first"))
            if before is not None:
                seen = pl.concat([before, seen])
            label = contract.column(key).zh
            # concat_str, not pl.format: on some slices after the first (a 2M roster's second slice of 1,941
            # rows) pl.format panicked in polars 2.1 ("assertion failed: i < self.len()"; tests/test_inputs.py).
            dups = dups.join(seen, on=key, how="left", maintain_order="left").with_columns(
                pl.concat_str([pl.lit(f"{label}重复（首次出现在第"), pl.col("_first").cast(pl.String), pl.lit("行）")]
                              ).alias(REASON),
                pl.lit(_check("be_unique", key)).alias(CHECK),
            )
            quarantine = pl.concat([quarantine, dups.select(quarantine.columns)])
    # In the order the rows came (the duplicates were put after the others): by line in a file; by file, in
    # the order the files came, then line, in the inbox's stored rows (not by the files' hashes, which made
    # the order of a slice that spans two files depend on where the slices were cut).
    quarantine = quarantine.sort(_POSITION).select(*carried, REASON, CHECK, *contract.names)
    counts = frame.select([e.sum().alias(k) for k, e in notes.items()]).row(0, named=True) if notes else {}
    rows = frame.with_columns(typed).select(*carried, *contract.names)  # drops the scratch columns
    return Parsed(rows=rows, quarantine=quarantine, notes={k: int(v or 0) for k, v in counts.items()}, window=window)


KEY_HASH = "_key_hash"


def _key_hash(key: str) -> pl.Expr:
    return pl.col(key).hash(seed=0)


def _earlier_with_keys_of(earlier: pl.DataFrame, frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """The earlier rows whose key hashes as one of frame's: all that can repeat one, and few. Found by a scan
    of the earlier rows' hashes: joining on the keys' text hashed every earlier key again for each slice
    (2.4 s a slice against 20M earlier keys, 0.26 s this way). A hash shared by two different keys only
    brings a row the exact join then leaves."""
    return earlier.filter(pl.col(KEY_HASH).is_in(frame.select(_key_hash(key)).to_series().implode()))


def first_keys(contract: Contract, rows: pl.DataFrame) -> pl.DataFrame | None:
    """What a later slice of the same file needs to know of these parsed rows (parse_rows' earlier)."""
    if not contract.unique_key:
        return None
    return rows.select(contract.unique_key, LINE, _key_hash(contract.unique_key).alias(KEY_HASH))


class SliceParser:
    """parse_rows over one file's slices, in order, keeping what a later slice needs of the earlier ones
    (first_keys): a key met again in a later slice is then a duplicate as it is in the whole file."""

    def __init__(self, contract: Contract, as_of: datetime | None = None, *, earlier: pl.DataFrame | None = None,
                 window: AsOfWindow | None = None) -> None:
        """earlier, window: the first_keys and window of the file's rows parsed before, when a file that grew
        at its end is parsed on from where it ended."""
        self.contract, self.as_of = contract, as_of
        self.earlier = earlier
        self.window = window or AsOfWindow()  # the as-of times the slices so far parse the same under

    def parse(self, raw: pl.DataFrame) -> Parsed:
        parsed = parse_rows(raw, self.contract, self.as_of, self.earlier)
        self.window &= parsed.window
        keys = first_keys(self.contract, parsed.rows)
        if keys is not None:
            self.earlier = keys if self.earlier is None else pl.concat([self.earlier, keys])
        return parsed
