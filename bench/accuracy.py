"""Match quality, gridsweep against Splink, side by side on the same generated files.

    python bench/accuracy.py [--sizes 50000 200000] [--seeds 1 2 3] [--work bench/work/accuracy]

Needs the bench extra (`pip install -e '.[bench]'`, or `make bench-accuracy`). For every size and seed it
generates labelled data (cached in --work), runs each linker in its own process (bench/link_compare.py:
same reading, parsing, normalising and rules; only linking differs), and scores both against the truth.
Prints a Markdown table (the one in the README) and writes it with the raw figures to --work.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINKERS = ("gridsweep", "splink")
TARGETS = {  # issue 5's targets for gridsweep
    "untested_recall": (">=", 0.999), "untested_precision": (">=", 0.995), "test_link_precision": (">=", 0.999),
    "vaccination_link_precision": (">=", 0.999), "vaccination_reason_f1": (">=", 0.995),
    "verify_share": ("<", 0.005),
}


def figures(result: dict) -> dict:
    s = result["scores"]
    return {
        "test_link_precision": s["links"]["test"]["precision"],
        "test_link_recall": s["links"]["test"]["recall"],
        "vaccination_link_precision": s["links"]["vaccination"]["precision"],
        "vaccination_link_recall": s["links"]["vaccination"]["recall"],
        "untested_recall": s["untested"]["recall"],
        "untested_precision": s["untested"]["precision"],
        "untested_precision_excl_quarantined": s["untested"]["precision_excluding_quarantined"],
        "vaccination_reason_f1": s["vaccination_reasons"]["f1"],
        "verify_share": s["verify_residents"] / s["residents"],
        "link_seconds": result["link_seconds"],
        "link_peak_rss_gib": result["link_peak_rss_gib"],
    }


def run_one(data: Path, linker: str, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, str(ROOT / "bench" / "link_compare.py"), "--data", str(data), "--linker", linker,
                    "--out", str(out)], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((out / "result.json").read_text(encoding="utf-8"))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def table(rows: dict[int, dict[str, list[dict]]]) -> str:
    better_high = {k for k in TARGETS if TARGETS[k][0] == ">="} | {
        "test_link_recall", "vaccination_link_recall", "untested_precision_excl_quarantined"}
    lines = []
    for size, by_linker in sorted(rows.items()):
        seeds = len(by_linker["gridsweep"])
        lines += [f"\n**{size:,} residents** (mean of {seeds} seed{'s' if seeds > 1 else ''})\n",
                  "| figure | gridsweep | Splink | target (gridsweep) | gridsweep ahead |", "|---|---:|---:|---|---|"]
        for key in figures(by_linker["gridsweep"][0]):
            g = _mean([figures(r)[key] for r in by_linker["gridsweep"]])
            s = _mean([figures(r)[key] for r in by_linker["splink"]])
            target = TARGETS.get(key)
            met = ""
            if target:
                ok = g >= target[1] if target[0] == ">=" else g < target[1]
                met = f"{target[0]} {target[1]} {'met' if ok else 'MISSED'}"
            ahead = (g >= s if key in better_high else g <= s)
            fmt = (lambda v: f"{v:.2%}") if key == "verify_share" else (
                (lambda v: f"{v:.2f}") if key.startswith("link_") else (lambda v: f"{v:.5f}"))
            lines.append(f"| {key} | {fmt(g)} | {fmt(s)} | {met} | {'yes' if ahead else 'no'} |")
    return "\n".join(lines)


def noise_table(results: list[dict]) -> str:
    """Records carrying each noise type, and how many each linker failed to link to the right resident."""
    agg: dict[tuple[str, str], dict[str, int]] = {}
    for r in results:
        for row in r["misses_by_noise"]:
            key = (row["record_kind"], row["noise"])
            a = agg.setdefault(key, {"records": 0, "gridsweep": 0, "splink": 0, "gridsweep_wrong": 0,
                                     "splink_wrong": 0, "_n": 0})
            if r["linker"] == "gridsweep":
                a["records"] += row["records"]
            a[r["linker"]] += row["not_linked_right"]
            a[f"{r['linker']}_wrong"] += row["wrong_link"]
    lines = ["| record | noise | records | gridsweep not linked right (wrong) | Splink not linked right (wrong) |",
             "|---|---|---:|---:|---:|"]
    for (kind, noise), a in sorted(agg.items()):
        lines.append(f"| {kind} | {noise} | {a['records']:,} | {a['gridsweep']:,} ({a['gridsweep_wrong']:,}) | "
                     f"{a['splink']:,} ({a['splink_wrong']:,}) |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--work", default=str(ROOT / "bench" / "work" / "accuracy"))
    args = ap.parse_args()
    work = Path(args.work)
    rows: dict[int, dict[str, list[dict]]] = {}
    for size in args.sizes:
        for seed in args.seeds:
            data = work / f"n{size}_s{seed}" / "data"
            if not (data / "campaign.toml").exists():
                subprocess.run([sys.executable, "-m", "flows.cli", "generate", "--residents", str(size), "--seed",
                                str(seed), "--out", str(data)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
            for linker in LINKERS:
                result = run_one(data, linker, work / f"n{size}_s{seed}" / linker)
                rows.setdefault(size, {}).setdefault(linker, []).append(result)
                print(f"{size} seed {seed} {linker}: {json.dumps(figures(result))}", file=sys.stderr)
    largest = max(rows)
    report = (table(rows) + f"\n\nMisses per noise type, {largest:,} residents, all seeds:\n\n"
              + noise_table(rows[largest]["gridsweep"] + rows[largest]["splink"]) + "\n")
    (work / "accuracy.md").write_text(report, encoding="utf-8")
    (work / "accuracy.json").write_text(json.dumps(
        {str(k): {ln: [figures(r) for r in v] for ln, v in by.items()} for k, by in rows.items()}, indent=1),
        encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
