"""Writing a synthetic street office to disk in the shapes real exports come in.

The roster comes as UTF-8 with a BOM and Chinese headers (a spreadsheet saved as CSV), the test-system
export as GB18030 with Chinese headers, the vaccination export as plain UTF-8 with English headers.
Ground truth goes to truth/, apart from the inputs.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from transforms.contract import ROSTER, TESTS, Contract
from transforms.synthetic import Part, Synthetic, generate


def _chinese_headers(frame: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    return frame.rename({c.name: c.zh for c in contract.columns if c.name in frame.columns})


def write_synthetic(data: Synthetic, out: Path, *, append: bool = False) -> dict[str, Path]:
    """append: add the rows to files written by an earlier call (one more part of a city), no header."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    paths = {
        "roster": out / "roster.csv",
        "tests": out / "tests.csv",
        "vaccinations": out / "vaccinations.csv",
    }
    mode = "ab" if append else "wb"

    def put(frame: pl.DataFrame, path: Path, encoding: str = "utf-8", bom: bool = False) -> None:
        text = frame.write_csv(include_header=not append)
        with open(path, mode) as fh:
            fh.write(("\ufeff" if bom and not append else "").encode(encoding) + text.encode(encoding))

    put(_chinese_headers(data.roster, ROSTER), paths["roster"], bom=True)
    put(_chinese_headers(data.tests, TESTS), paths["tests"], encoding="gb18030")
    put(data.vaccinations, paths["vaccinations"])
    put(data.truth_residents, out / "truth" / "residents.csv")
    put(data.truth_tests, out / "truth" / "test_links.csv")
    put(data.truth_vaccinations, out / "truth" / "vaccination_links.csv")
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


def write_city(residents: int, seed: int, as_of, out: Path, *, part_size: int = 1_000_000) -> dict[str, int]:
    """A city of any size, generated and written part_size residents at a time (see transforms.synthetic.Part),
    so the generator's memory stays that of one part. Returns the row counts written."""
    part = Part()
    counts = {"residents": 0, "tests": 0, "vaccinations": 0}
    k = 0
    while counts["residents"] < residents:
        n = min(part_size, residents - counts["residents"])
        data = generate(n, seed * 1000 + k if k else seed, as_of, grid_size=300 if residents >= 20_000 else None,
                        part=part)
        write_synthetic(data, out, append=k > 0)
        counts["residents"] += n
        counts["tests"] += data.tests.height
        counts["vaccinations"] += data.vaccinations.height
        k += 1
    return counts
