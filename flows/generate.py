"""Writing a synthetic street office to disk in the shapes real exports come in.

The roster comes as UTF-8 with a BOM and Chinese headers (a spreadsheet saved as CSV), the test-system
export as GB18030 with Chinese headers, the vaccination export as plain UTF-8 with English headers.
Ground truth goes to truth/, apart from the inputs.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms.contract import ROSTER, TESTS, Contract
from transforms.synthetic import Synthetic


def _chinese_headers(frame: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    return frame.rename({c.name: c.zh for c in contract.columns if c.name in frame.columns})


def write_synthetic(data: Synthetic, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    paths = {
        "roster": out / "roster.csv",
        "tests": out / "tests.csv",
        "vaccinations": out / "vaccinations.csv",
    }
    _chinese_headers(data.roster, ROSTER).write_csv(paths["roster"], include_bom=True)
    text = _chinese_headers(data.tests, TESTS).write_csv()
    paths["tests"].write_bytes(text.encode("gb18030"))
    data.vaccinations.write_csv(paths["vaccinations"])
    data.truth_residents.write_csv(out / "truth" / "residents.csv")
    data.truth_tests.write_csv(out / "truth" / "test_links.csv")
    data.truth_vaccinations.write_csv(out / "truth" / "vaccination_links.csv")
    (out / "campaign.toml").write_text(
        "# The testing round these records were generated for.\n"
        "[round]\n"
        f'since = "{data.since.isoformat(timespec="minutes")}"\n'
        f'as_of = "{data.as_of.isoformat(timespec="minutes")}"\n\n'
        "[inputs]\n"
        'roster = "roster.csv"\n'
        'tests = "tests.csv"\n'
        'vaccinations = "vaccinations.csv"\n',
        encoding="utf-8",
    )
    return paths
