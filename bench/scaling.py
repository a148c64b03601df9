"""How each stage grows with the size of the city: runs bench/refresh_1m.py at each size (skipping sizes
already measured unless --again) and prints one table of stage seconds and stage peak memory, with the
growth per doubling of residents (1.0 is linear).

    python bench/scaling.py --residents 1000000 2000000 5000000 [--work /tmp/bw] [--again]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["read", "validate", "normalise", "link", "rules", "sheets", "write"]


def growth(small: float, big: float, n_small: int, n_big: int) -> str:
    """Exponent of the fitted power law time ~ n^k between two sizes (1.00 = linear)."""
    if small <= 0 or big <= 0:
        return "—"
    return f"{math.log(big / small) / math.log(n_big / n_small):.2f}"


def table(results: list[dict]) -> str:
    sizes = [r["residents"] for r in results]
    head = "| stage | " + " | ".join(f"{n / 1e6:g}M s | {n / 1e6:g}M GiB" for n in sizes)
    head += " | growth k (time ~ n^k) |\n|---|" + "---:|---:|" * len(sizes) + "---:|\n"
    rows = []
    for stage in [*STAGES, "total"]:
        secs = [r["refresh"]["stages"].get(stage, float("nan")) for r in results]
        peaks = [r["refresh"].get("stage_peak_gib", {}).get(stage, float("nan")) for r in results]
        if stage == "total":
            peaks = [r["refresh"]["peak_gib"] for r in results]
        cells = " | ".join(f"{s:.1f} | {p:.2f}" for s, p in zip(secs, peaks, strict=True))
        k = growth(secs[0], secs[-1], sizes[0], sizes[-1]) if len(sizes) > 1 else "—"
        rows.append(f"| {stage} | {cells} | {k} |")
    return head + "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, nargs="+", default=[1_000_000, 2_000_000])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default=str(ROOT / "bench" / "work"))
    ap.add_argument("--again", action="store_true", help="measure sizes that already have results")
    args = ap.parse_args()
    results = []
    for n in sorted(args.residents):
        path = Path(args.work) / f"n{n}_s{args.seed}" / "results.json"
        if args.again or not path.exists():
            subprocess.run([sys.executable, str(ROOT / "bench" / "refresh_1m.py"), "--residents", str(n),
                            "--seed", str(args.seed), "--work", args.work], check=True)
        results.append(json.loads(path.read_text(encoding="utf-8")))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
