"""Splink (Fellegi-Sunter on DuckDB), set up as a competent Splink user would for this data: the benchmark's
yardstick for gridsweep's own linker. Benchmark-only: `pip install -e '.[bench]'`.

It gets the same normalised columns gridsweep's matcher sees (checked and upgraded IDs, pinyin keys with
surname readings, phones without prefixes, canonical addresses), so the comparison is between the two
linking models, not between cleaning and no cleaning. Training is unsupervised, as Splink recommends:
lambda from a deterministic rule, u by random sampling, m by EM on two blocking rules.
"""

from __future__ import annotations

import polars as pl

from transforms.decision import LINK_COLUMNS

MATCH_PROBABILITY = 0.9  # top candidate at or above: a link
POSSIBLE_PROBABILITY = 0.5  # top candidate at or above, below MATCH: the verify list, as gridsweep's 'possible'

_COLUMNS = ["name_norm", "name_py", "name_py_loose", "id_any", "birth", "sex", "phone_norm", "addr_canon",
            "addr_block"]


def _side(frame: pl.DataFrame, unique_id: pl.Expr) -> pl.DataFrame:
    return frame.select(
        unique_id.alias("unique_id"),
        "name_norm", "name_py", "name_py_loose",
        # The 18-character body for resident cards (upgraded, typos kept), else the cleaned number.
        pl.coalesce("id_body", "id_clean").alias("id_any"),
        pl.col("birth").cast(pl.String), "sex", "phone_norm", "addr_canon", "addr_block",
    )


def settings():
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    name = cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            cll.NullLevel("name_py"),
            cll.ExactMatchLevel("name_norm"),
            cll.ExactMatchLevel("name_py"),
            cll.ExactMatchLevel("name_py_loose"),
            cll.JaroWinklerLevel("name_py", 0.9),
            cll.JaroWinklerLevel("name_py", 0.75),
            cll.ElseLevel(),
        ],
    )
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.NullLevel("addr_canon"),
            cll.ExactMatchLevel("addr_canon"),
            cll.ExactMatchLevel("addr_block"),
            cll.JaroWinklerLevel("addr_canon", 0.9),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.DamerauLevenshteinAtThresholds("id_any", [1, 2]),
            name,
            cl.DamerauLevenshteinAtThresholds("phone_norm", [1]),
            cl.ExactMatch("birth"),
            cl.ExactMatch("sex"),
            address,
        ],
        blocking_rules_to_generate_predictions=[
            block_on("id_any"),
            block_on("phone_norm"),
            block_on("name_py", "birth"),
            block_on("name_py_loose", "birth"),
            block_on("name_py", "addr_block"),
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def splink_links(residents: pl.DataFrame, records: pl.DataFrame, *, db_path: str, memory_limit: str = "4GB",
                 seed: int = 1) -> tuple[pl.DataFrame, dict]:
    """records: record_kind, record_id and the identity columns; residents: resident_id and the same.
    Returns links in gridsweep's LINK_COLUMNS shape, and training facts."""
    import duckdb
    from splink import Linker, block_on
    from splink.backends.duckdb import DuckDBAPI

    con = duckdb.connect(db_path)
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET threads = 2")
    db_api = DuckDBAPI(connection=con)
    left = _side(records, pl.col("record_kind") + pl.lit(":") + pl.col("record_id"))
    right = _side(residents, pl.col("resident_id"))
    left_df = db_api.register(left.to_arrow(), table_name="records_l")
    right_df = db_api.register(right.to_arrow(), table_name="residents_r")
    linker = Linker([left_df, right_df], settings(), log_level="WARNING")
    linker.training.estimate_probability_two_random_records_match([block_on("id_any")], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=seed)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("id_any"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("phone_norm"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name_py", "birth"))
    predictions = linker.inference.predict(threshold_match_probability=POSSIBLE_PROBABILITY)
    pairs = pl.from_arrow(con.sql(
        f"SELECT unique_id_l, unique_id_r, match_probability, match_weight FROM {predictions.physical_name}"
    ).to_arrow_table())
    con.close()
    # Link-only predictions put records on one side; make sure which is which.
    if pairs.height and not pairs["unique_id_l"].str.contains(":").all():
        pairs = pairs.rename({"unique_id_l": "unique_id_r", "unique_id_r": "unique_id_l"})
    best = (
        pairs.sort(["unique_id_l", "match_probability", "unique_id_r"], descending=[False, True, False])
        .group_by("unique_id_l", maintain_order=True).first()
    )
    links = best.select(
        pl.col("unique_id_l").str.split_exact(":", 1).struct.rename_fields(["record_kind", "record_id"]).alias("k"),
        pl.col("unique_id_r").alias("resident_id"),
        pl.lit("splink").alias("method"),
        pl.col("match_probability").alias("score"),
        pl.when(pl.col("match_probability") >= MATCH_PROBABILITY).then(pl.lit("match"))
        .otherwise(pl.lit("possible")).alias("decision"),
        pl.format("匹配概率 {}", pl.col("match_probability").round(3)).alias("explanation"),
    ).unnest("k").select(LINK_COLUMNS)
    return links, {"scored_pairs": pairs.height}
