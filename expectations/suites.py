"""Great Expectations suites, generated from the contract, checked on the rows that passed row parsing.

Row parsing already quarantines what cannot be used; the suite is the published check that what goes
on to linking honours the contract (keys present and unique, allowed values, times within the round,
plausible birth dates), and that the share of suspicious identifiers and phones stays within what the
campaign expects. Great Expectations 1.x does not take polars frames, so the rows are handed over as an
Arrow-backed pandas frame (the strings are not copied). Results are kept at SUMMARY level with no
example values, so no name, phone or ID number reaches the Data Docs.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from transforms.contract import (
    DOSE_RANGE,
    EARLIEST_BIRTH,
    EARLIEST_EVENT,
    Contract,
    Kind,
    Role,
)
from transforms.idcard import ID_MISSING, ID_OK, ID_UPGRADED, normalise_ids
from transforms.owned_frames import owned
from transforms.phones import PHONE_LANDLINE, PHONE_MISSING, PHONE_MOBILE, normalise_phones

# Share of rows that may carry a suspicious ID or phone (kept, flagged, never an exact key) before the
# suite fails. Real exports run a few percent; a third of a file means a broken export or wrong column.
SUSPICIOUS_TOLERANCE = 0.85
ID_CHECK = "id_check"
PHONE_CHECK = "phone_check"
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}


@dataclass(frozen=True)
class ExpectationResult:
    expectation: str
    column: str | None
    success: bool
    element_count: int | None
    unexpected_count: int | None


@dataclass(frozen=True)
class SuiteResult:
    source: str
    success: bool
    expectations: list[ExpectationResult]
    rows_total: int = 0  # rows that passed the row checks
    rows_checked: int = 0  # of those, the rows the suite saw (all, or a random sample of a big file)


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def import_in_background() -> threading.Thread:
    """Importing Great Expectations takes seconds (3.3 s here), all of it waiting if done when the suites
    are due; done while the inputs are read (polars lets go of the GIL), it costs nothing. A later import
    waits for this one to finish."""
    thread = threading.Thread(target=_gx, name="import-great-expectations", daemon=True)
    thread.start()
    return thread


def build_suite(contract: Contract, as_of: datetime | None = None, *, standalone: bool = True):
    """standalone: make a throwaway context (GE needs an active one); SuiteRunner passes False
    because its file context is the one the suite must belong to."""
    gx = _gx()
    if standalone:
        gx.get_context(mode="ephemeral")
    e = gx.expectations
    suite = gx.ExpectationSuite(name=f"{contract.name}_contract")
    checks = [c for c in (ID_CHECK, PHONE_CHECK) if _has_role(contract, c)]
    suite.add_expectation(e.ExpectTableColumnsToMatchSet(column_set=["_line", *contract.names, *checks]))
    latest = as_of.replace(tzinfo=None) if as_of is not None else None
    for col in contract.columns:
        if col.required:
            suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=col.name))
        if col.allowed and col.multi:
            one = "|".join(col.allowed)
            suite.add_expectation(e.ExpectColumnValuesToMatchRegex(column=col.name, regex=f"^(?:{one})(?:;(?:{one}))*$"))
        elif col.allowed and col.kind is Kind.TEXT:
            suite.add_expectation(e.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed)))
        if col.kind is Kind.DATETIME:
            suite.add_expectation(e.ExpectColumnValuesToBeBetween(
                column=col.name, min_value=datetime.combine(EARLIEST_EVENT, datetime.min.time()), max_value=latest))
        if col.role is Role.BIRTH_DATE:
            suite.add_expectation(e.ExpectColumnValuesToBeBetween(
                column=col.name, min_value=datetime.combine(EARLIEST_BIRTH, datetime.min.time()), max_value=latest))
        if col.kind is Kind.INT:
            suite.add_expectation(e.ExpectColumnValuesToBeBetween(
                column=col.name, min_value=DOSE_RANGE[0], max_value=DOSE_RANGE[1]))
    if contract.unique_key:
        suite.add_expectation(e.ExpectColumnValuesToBeUnique(column=contract.unique_key))
    if ID_CHECK in checks:
        # Check digit (MOD 11-2) for resident ID cards, form for the other document types.
        suite.add_expectation(e.ExpectColumnValuesToBeInSet(
            column=ID_CHECK, value_set=[ID_OK, ID_UPGRADED, ID_MISSING], mostly=SUSPICIOUS_TOLERANCE))
    if PHONE_CHECK in checks:
        suite.add_expectation(e.ExpectColumnValuesToBeInSet(
            column=PHONE_CHECK, value_set=[PHONE_MOBILE, PHONE_LANDLINE, PHONE_MISSING],
            mostly=SUSPICIOUS_TOLERANCE))
    return suite


def _has_role(contract: Contract, check: str) -> bool:
    return contract.by_role(Role.ID_NUMBER if check == ID_CHECK else Role.PHONE) is not None


def checked_column(contract: Contract, column: str | None) -> str | None:
    """The input column an expectation is about (the derived checks stand for their source column)."""
    if column == ID_CHECK:
        return contract.by_role(Role.ID_NUMBER)
    if column == PHONE_CHECK:
        return contract.by_role(Role.PHONE)
    return column


def expectation_frame(contract: Contract, rows: pl.DataFrame):
    """The parsed rows as Great Expectations sees them: typed columns, plus the identifier checks
    computed by the same normalisers the matcher uses (a check digit is not a regex)."""
    frame = rows.select("_line", *contract.names)
    id_col, phone_col = contract.by_role(Role.ID_NUMBER), contract.by_role(Role.PHONE)
    extra = []
    if id_col:
        extra.append(normalise_ids(frame.select(id_col, "id_type"), id_col=id_col)["id_flag"].alias(ID_CHECK))
    if phone_col:
        extra.append(normalise_phones(frame.select(phone_col), col=phone_col)["phone_flag"].alias(PHONE_CHECK))
    for col in contract.columns:
        if col.kind is Kind.DATE:
            frame = frame.with_columns(pl.col(col.name).cast(pl.Datetime("us")))
    out = frame.with_columns(extra).to_pandas(use_pyarrow_extension_array=True)
    # GE compares ranges vectorised only for numpy datetime64[ns] and int/float columns (any other dtype
    # goes element by element in Python: 5 s per million rows); the strings stay Arrow-backed.
    for col in contract.columns:
        if col.kind in (Kind.DATE, Kind.DATETIME):
            out[col.name] = out[col.name].astype("datetime64[ns]")
        elif col.kind is Kind.INT:
            out[col.name] = out[col.name].astype("float64")
    return out


class RowSample:
    """A fixed random sample of size rows (0: every row) of a file read a slice at a time: each row draws a
    number from its position (a seeded hash) and the size lowest draws are kept, so the sample is uniform,
    the same every time for the same rows, and never more than size rows plus a slice in memory."""

    _DRAW = "_draw"

    def __init__(self, size: int) -> None:
        self.size, self.seen = size, 0
        self._kept: pl.DataFrame | None = None

    def add(self, rows: pl.DataFrame) -> RowSample:
        drawn = rows.with_columns(
            pl.int_range(self.seen, self.seen + rows.height, dtype=pl.UInt64).hash(seed=0).alias(self._DRAW))
        self.seen += rows.height
        pool = drawn if self._kept is None else pl.concat([self._kept, drawn])
        # The rows drawn copied out of their slices: kept as views, they held every slice's text until the
        # whole source was read (transforms.owned_frames).
        self._kept = pool if self.size <= 0 or pool.height <= self.size else owned(pool.bottom_k(self.size, by=self._DRAW))
        return self

    def kept(self) -> pl.DataFrame:
        """The sample as drawn, to be stored and restored(): a suite run again on it sees the same rows in the
        same order, so its verdict and its Data Docs are those of the first run."""
        if self._kept is None:
            raise ValueError("no rows were added to the sample")
        return self._kept

    @classmethod
    def restored(cls, size: int, kept: pl.DataFrame, seen: int) -> RowSample:
        sample = cls(size)
        sample._kept, sample.seen = kept, seen
        return sample

    def rows(self) -> pl.DataFrame:
        if self._kept is None:
            raise ValueError("no rows were added to the sample")
        return self._kept.drop(self._DRAW)


class SuiteRunner:
    """Checks one source at a time in one file-backed context under root, so Great Expectations renders its
    Data Docs there (see expectations.docs for the offline copy) and a refresh can read, check and normalise
    a source and let go of it before reading the next.

    A suite says whether a file as a whole is the export it claims to be (every row was already checked
    one by one in transforms.parsing). For a big file a fixed random sample (RowSample) answers that as well
    as the whole file: a share of bad IDs is estimated to within a fraction of a percent, at a small part of
    the time and memory of handing millions of rows to pandas."""

    def __init__(self, root: Path, as_of: datetime | None) -> None:
        self.as_of = as_of
        self._gx = _gx()
        self._context = self._gx.get_context(mode="file", project_root_dir=str(root))
        self._context.variables.progress_bars = {"globally": False, "metric_calculations": False}
        self._data_source = self._context.data_sources.add_pandas(name="refresh_rows")

    def check(self, name: str, sample: RowSample, contract: Contract) -> SuiteResult:
        gx, context = self._gx, self._context
        batch = self._data_source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("all_rows")
        suite = context.suites.add(build_suite(contract, self.as_of, standalone=False))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        # One checkpoint per source: a checkpoint's batch parameters are shared by its validations. No action:
        # the Data Docs are built once the sources are checked (build_docs), not again after each source
        # (0.2-0.3 s a source, each rebuild rendering every result so far).
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"refresh_{name}", validation_definitions=[definition], actions=[], result_format=RESULT_FORMAT))
        rows = sample.rows()
        run = checkpoint.run(batch_parameters={"dataframe": expectation_frame(contract, rows)})
        result = next(iter(run.run_results.values()))
        return SuiteResult(source=name, success=bool(result.success), expectations=[_summarise(r) for r in result.results],
                           rows_total=sample.seen, rows_checked=rows.height)

    def build_docs(self) -> None:
        """Renders the Data Docs (data_docs_site) of every source checked so far."""
        self._context.build_data_docs()


def validate_sources(
    rows: dict[str, pl.DataFrame], contracts: dict[str, Contract], as_of: datetime | None, root: Path,
    sample_rows: int = 0,
) -> dict[str, SuiteResult]:
    """Every source's suite, in one context (the tests and the expectations benchmark check several at once)."""
    runner = SuiteRunner(root, as_of)
    results = {name: runner.check(name, RowSample(sample_rows).add(frame), contracts[name]) for name, frame in rows.items()}
    runner.build_docs()
    return results


def _summarise(r) -> ExpectationResult:
    cfg = r.expectation_config
    result = r.result or {}
    return ExpectationResult(
        expectation=cfg.type, column=cfg.kwargs.get("column"), success=bool(r.success),
        element_count=result.get("element_count"), unexpected_count=result.get("unexpected_count"),
    )


def data_docs_site(root: Path) -> Path:
    return root / "gx" / "uncommitted" / "data_docs" / "local_site"
