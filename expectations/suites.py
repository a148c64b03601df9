"""Great Expectations suites, generated from the contract, checked on the rows that passed row parsing.

Row parsing already quarantines what cannot be used; the suite is the published check that what goes
on to linking honours the contract (keys present and unique, allowed values only), and that the share
of suspicious identifiers stays within what the campaign expects. Great Expectations 1.x does not take
polars frames, so the rows are handed over as an Arrow-backed pandas frame (no copy of the strings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import polars as pl

from transforms.contract import Contract, Kind

# Share of rows that may carry a malformed or check-digit-failing ID before the suite fails.
SUSPICIOUS_ID_TOLERANCE = 0.85


@dataclass(frozen=True)
class ExpectationResult:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None


def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    return context


def build_suite(contract: Contract):
    import great_expectations as gx

    _context()
    suite = gx.ExpectationSuite(name=f"{contract.name}_contract")
    suite.add_expectation(gx.expectations.ExpectTableColumnsToMatchSet(column_set=["_line", *contract.names]))
    for col in contract.columns:
        if col.required:
            suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=col.name))
        if col.allowed and not col.multi and col.kind is Kind.TEXT:
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed)))
    if contract.unique_key:
        suite.add_expectation(gx.expectations.ExpectColumnValuesToBeUnique(column=contract.unique_key))
    if "id_number" in contract.names:
        suite.add_expectation(
            gx.expectations.ExpectColumnValuesToMatchRegex(
                column="id_number", regex=r"^\s*(?:\d{15}|\d{17}[\dXx]|[A-Za-z0-9]{5,20})\s*$",
                mostly=SUSPICIOUS_ID_TOLERANCE,
            )
        )
    return suite


def validate_rows(contract: Contract, rows: pl.DataFrame) -> list[ExpectationResult]:
    context = _context()
    source = context.data_sources.add_pandas(name=f"{contract.name}_rows")
    asset = source.add_dataframe_asset(name=contract.name)
    batch_def = asset.add_batch_definition_whole_dataframe("all_rows")
    frame = rows.select("_line", *[pl.col(c).cast(pl.String) for c in contract.names]).to_pandas(
        use_pyarrow_extension_array=True
    )
    result = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(build_suite(contract))
    out = []
    for r in result.results:
        cfg = r.expectation_config
        out.append(
            ExpectationResult(
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                success=bool(r.success),
                unexpected_count=r.result.get("unexpected_count"),
            )
        )
    return out
