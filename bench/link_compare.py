"""One linker on one generated dataset, in its own process: the same reading, parsing, normalising and
rules for both, only the linking step differs. Writes call_list.csv, matches/ and quarantine/ into
--out, scores them against the generator's truth, and prints one JSON line.

    python bench/link_compare.py --data DIR --linker gridsweep|splink --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--linker", choices=("gridsweep", "splink"), required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()


    from flows.database import Database
    from flows.evaluate import misses_by_noise, score_run
    from flows.kept_rules import KeptRules
    from flows.match_parts import FOLDER
    from flows.meter import StageMeter, current_rss
    from flows.readers import read_table
    from flows.record_spill import RecordSpill
    from flows.refresh import link
    from flows.ruling import apply_rules
    from flows.settings import load_settings
    from flows.sources import spill_linking_rows
    from transforms.contract import INPUTS
    from transforms.normalise import IDENTITY_COLUMNS, normalise_people
    from transforms.parsing import parse_rows
    from transforms.record_rows import records_for_linking
    from transforms.rule_parts import RuleInputs

    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quarantine").mkdir(exist_ok=True)
    settings = load_settings(data / "campaign.toml", out=str(out), db=str(out / "bench.duckdb"))
    sources = {"roster": settings.roster, "tests": settings.tests, "vaccinations": settings.vaccinations}
    people = {}
    for name, path in sources.items():
        parsed = parse_rows(read_table(path, INPUTS[name]).frame, INPUTS[name], settings.as_of)
        parsed.quarantine.rename({"_line": "line"}).write_csv(out / "quarantine" / f"{name}.csv")
        people[name] = normalise_people(parsed.rows, INPUTS[name])

    if args.linker == "gridsweep":  # as the flow's normalise does, before the linking is timed
        spill = RecordSpill(out / "spill")
        for name in ("tests", "vaccinations"):
            spill_linking_rows(spill, name, people[name])
    meter = StageMeter(interval=0.05)
    before = current_rss()
    meter.mark("before_link")
    t = time.perf_counter()
    if args.linker == "gridsweep":
        db = Database(settings.duckdb)
        try:
            linked = link.fn(db, people["roster"], spill, settings)
            links, stats = linked["links"].collect(), linked["stats"]
        finally:
            db.close()
            spill.remove()
    else:
        from bench.splink_linker import splink_links

        residents = people["roster"].select("resident_id", "id_clean", *IDENTITY_COLUMNS)
        records = records_for_linking(people["tests"], people["vaccinations"], ["id_clean", *IDENTITY_COLUMNS])
        links, stats = splink_links(residents, records, db_path=str(out / "splink.duckdb"),
                                    memory_limit=settings.duckdb.memory_limit)
    link_seconds = time.perf_counter() - t
    link_peak = meter.mark("link")
    meter.stop()

    given = RuleInputs(round=settings.round, rules=settings.rules, escalation=settings.escalation)
    # Every resident ruled, as in a first refresh: no rulings kept from a run before (lineage unknown).
    kept = KeptRules(out / "kept_rules", "bench", {})
    lineage = {"touched": None, "from": None, "to": None, "earlier": []}
    call_list = apply_rules.fn(people, links, given, kept, lineage, None, "bench").call_list
    call_list.write_csv(out / "call_list.csv")
    (out / FOLDER).mkdir(exist_ok=True)  # where score_run reads the decisions, as a refresh publishes them
    links.select("record_kind", "record_id", "resident_id", "method", "score", "decision").write_csv(
        out / FOLDER / "all.csv")
    scores = score_run(settings, data)
    noise = misses_by_noise(settings, data)
    result = {
        "linker": args.linker,
        "residents": people["roster"].height,
        "link_seconds": round(link_seconds, 2),
        "link_peak_rss_gib": link_peak,
        "rss_before_link_gib": round(before / 2**30, 2),
        "scores": scores,
        "misses_by_noise": noise.to_dicts(),
        "stats": {k: v for k, v in stats.items() if k in ("candidate_pairs", "scored_pairs", "pending_records")},
    }
    (out / "result.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "misses_by_noise"}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
