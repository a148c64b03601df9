"""From scored candidate pairs to one decision per record: match, possible (verify), or no link.

A link must say who the person is: the name may not disagree, and a birth date or sex that
contradicts the roster (with no ID to override it) keeps a pair out of 'match'. When two residents
score nearly alike for one record (twins, a father and son on one phone), neither is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.comparison import LEVEL_COLUMNS, explain_levels
from transforms.linking import rule_text

NAME_AGREES = ("exact", "homophone", "wildcard")
LINK_COLUMNS = ["record_kind", "record_id", "resident_id", "method", "score", "decision", "explanation"]
# Columns with a few hundred distinct texts over a city's tens of millions of decisions (at 1M residents, 352
# explanations and 86 methods among 3.2M decisions): held as Categorical, 4 bytes a row, instead of the text
# (the explanations alone were half the decisions' memory). Written out as the same text. Not record_kind:
# it is a join key, and short enough to sit inside its string view.
REPEATED_LINK_COLUMNS = ["method", "decision", "explanation"]


def compact_links(links: pl.DataFrame) -> pl.DataFrame:
    return links.with_columns(pl.col(c).cast(pl.Categorical) for c in REPEATED_LINK_COLUMNS)


@dataclass(frozen=True)
class DecisionSettings:
    match_threshold: float = 9.5
    possible_threshold: float = 6.0
    ambiguity_margin: float = 2.0


def decide_links(scored: pl.DataFrame, settings: DecisionSettings) -> pl.DataFrame:
    """One row per record that has a candidate scoring at least the possible threshold. scored carries the
    pair's numbers (transforms.pair_decisions): _li, one per record, and _ri, the resident's rank by
    resident_id. A record's candidates are ranked by score, then by resident_id (as _ri), on those two
    integers: sorting by the keys' strings took nine tenths of the decision."""
    if scored.height == 0:
        return pl.DataFrame(schema={c: pl.String for c in LINK_COLUMNS} | {"score": pl.Float64})
    # Only what the decision reads: sorting the pairs' dozens of identity columns too costs more than deciding.
    needed = ["_li", "_ri", "record_kind", "record_id", "resident_id", "score", *LEVEL_COLUMNS, "stage", "rule_bits"]
    if scored["_li"].is_unique().all():
        # One candidate per record (every pair of the exact stage, whose IDs are unique on the roster): no
        # runner-up and no other name, so nothing to rank; grouping them cost twice their comparison.
        best = scored.select(needed).sort("_li").with_columns(
            pl.lit(None, dtype=pl.Float64).alias("runner_up"), pl.lit(False).alias("other_name_agrees"))
    else:
        ranked = scored.select(needed).sort(["_li", "score", "_ri"], descending=[False, True, False])
        name_agrees = pl.col("name_level").is_in(NAME_AGREES) & (pl.col("score") >= settings.possible_threshold)
        best = ranked.group_by("_li", maintain_order=True).agg(
            pl.all().first(),
            pl.col("score").get(1, null_on_oob=True).alias("runner_up"),
            name_agrees.slice(1).any().alias("other_name_agrees"),
        )
    best = explain_levels(best)
    c = pl.col
    # A parent's ID on a child's record: the parent scores higher on the ID, the child has the name.
    # When the best candidate's name only nearly agrees and another's agrees, a person must decide.
    name_contest = ~c("name_level").is_in(NAME_AGREES) & c("other_name_agrees")
    id_spoke = c("id_level").is_in(["exact", "one_edit"])
    contradicted = ~id_spoke & ((c("birth_level") == "different") | (c("sex_level") == "different"))
    ambiguous = (c("runner_up").is_not_null() & (c("runner_up") >= c("score") - settings.ambiguity_margin)) | name_contest
    strong = (c("score") >= settings.match_threshold) & (c("name_level") != "different") & ~contradicted
    decision = (
        pl.when(strong & ~ambiguous).then(pl.lit("match"))
        .when(c("score") >= settings.possible_threshold).then(pl.lit("possible"))
        .otherwise(None)
    )
    method = (
        pl.when(c("stage") == "exact").then(pl.lit("id_exact"))
        .otherwise(pl.lit("fuzzy:") + rule_text(c("rule_bits")))
    )
    explanation = pl.when(ambiguous).then(c("explanation") + pl.lit("；另有相近人员，需核实")).otherwise(c("explanation"))
    return (
        best.with_columns(decision.alias("decision"), method.alias("method"), explanation.alias("explanation"))
        .filter(c("decision").is_not_null())
        .select(LINK_COLUMNS)
    )
