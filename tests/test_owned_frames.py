"""A few rows kept from a big frame hold only their own text (transforms.owned_frames), wherever loading keeps
rows past the slice they came in: the suites' sample, the quarantined rows, the names met."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from expectations.suites import RowSample
from flows.generate import write_synthetic
from flows.meter import StageMeter
from flows.record_spill import FactSpill, RecordSpill
from flows.settings import load_settings
from flows.sources import SourceLoader, file_sources
from transforms.names import NamesMet
from transforms.owned_frames import owned
from transforms.synthetic import generate


def text_buffers(frame: pl.DataFrame) -> int:
    """Bytes of the text buffers frame's string columns point into (Arrow's view arrays, shared as they are:
    polars hands them over without a copy). Strings of 12 bytes or fewer sit in the views and count nothing."""
    table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    total = 0
    for column in table.columns:
        for chunk in column.chunks:
            assert str(chunk.type) in ("string_view", "binary_view"), chunk.type
            total += sum(b.size for b in chunk.buffers()[2:] if b is not None)
    return total


def own_text(frame: pl.DataFrame) -> int:
    """Bytes of frame's own strings longer than 12 bytes: what its buffers need to hold."""
    strings = frame.select(pl.col(pl.String))
    return sum(int(s.str.len_bytes().filter(s.str.len_bytes() > 12).sum() or 0) for s in strings.get_columns())


def long_texts(n: int, tag: str) -> list[str]:
    return [f"{tag}-{i:08d}-广东省深圳市南山区粤海街道科技园社区" for i in range(n)]


def test_owned_rows_hold_their_own_text_and_the_same_values_and_types():
    n = 50_000
    big = pl.DataFrame({
        "text": long_texts(n, "a"),
        "short": [f"s{i % 7}" if i % 11 else None for i in range(n)],
        "raw": [f"{i:040d}".encode() for i in range(n)],
        "names": [[f"名字{i:030d}", None] for i in range(n)],
        "both": [{"s": f"{i:030d}", "n": i} for i in range(n)],
        "kind": pl.Series([("甲", "乙")[i % 2] for i in range(n)], dtype=pl.Enum(["甲", "乙"])),
        "at": pl.Series([datetime(2022, 5, 20, i % 24) for i in range(n)]).dt.replace_time_zone("Asia/Shanghai"),
        "n": range(n),
    })
    few = big.filter(pl.col("n") % 1000 == 3)
    assert few.height == 50
    # As picked, the 50 rows hold the text of all 50,000 (the premise: were it not so, nothing needs doing).
    assert text_buffers(few.select("text")) > 100 * own_text(few.select("text"))
    kept = owned(few)
    assert kept.schema == few.schema and kept.equals(few)
    assert text_buffers(kept.select("text")) == own_text(kept.select("text"))
    assert owned(big.head(0)).schema == big.schema


def test_the_suites_sample_holds_only_its_own_rows_text_however_many_slices_it_was_drawn_from():
    sample = RowSample(200)
    for i in range(20):
        sample.add(pl.DataFrame({"address": long_texts(20_000, f"slice{i}"), "n": range(20_000)}))
    kept = sample.kept()
    assert kept.height == 200
    assert kept["address"].str.slice(0, 8).n_unique() > 10  # drawn from many slices
    assert text_buffers(kept.select("address")) == own_text(kept)


def test_the_names_met_hold_only_their_own_text():
    met = NamesMet()
    for i in range(5):
        # A slice's name column: 30,000 rows, of which 40 distinct names are new.
        column = pl.DataFrame({"name": [f"欧阳{i}号{j % 40:02d}娜娜" for j in range(30_000)]
                               + long_texts(30_000, f"filler{i}")})
        distinct = column.head(30_000).unique()
        met.normalise(distinct, "name")
    known = met.known.select(pl.col(pl.String))
    assert known.height == 200
    assert text_buffers(known) <= own_text(known) + 1024


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    data = tmp_path_factory.mktemp("owned")
    write_synthetic(generate(3000, seed=8), data)
    return data


def test_a_source_read_in_slices_keeps_only_its_quarantined_rows_text(campaign, tmp_path):
    settings = load_settings(campaign / "campaign.toml", out=str(tmp_path / "out"), db=str(tmp_path / "g.duckdb"))
    loader = SourceLoader(settings, tmp_path / "docs", tmp_path / "failed", RecordSpill(tmp_path / "records"),
                          FactSpill(tmp_path / "facts"), StageMeter(), {}, {}, 500)
    sources = file_sources(settings)
    loaded = loader.load("tests", sources["tests"])
    quarantine = loaded["quarantine"]
    assert 0 < quarantine.height < loaded["table"].rows / 20  # a few rows of many slices
    assert text_buffers(quarantine.select(pl.col(pl.String))) <= own_text(quarantine) + 1024
