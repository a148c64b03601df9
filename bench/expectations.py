"""Great Expectations on a sample of each file: time and verdicts for several sample sizes, on the inputs
of a generated campaign (bench/refresh_1m.py makes them).

    python bench/expectations.py --data bench/work/n1000000_s1/data [--samples 500000 100000]

Times the expectation frames (identifier checks, hand-over to pandas) and the checkpoints together, as
the refresh's validate stage runs them; the inputs are read and parsed once, before the first timing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from expectations.suites import validate_sources
    from flows.readers import read_table
    from flows.settings import load_settings
    from transforms.contract import INPUTS
    from transforms.parsing import parse_rows

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="a generated campaign's folder (campaign.toml and the CSVs)")
    ap.add_argument("--samples", type=int, nargs="+", default=[500_000, 100_000])
    args = ap.parse_args()
    settings = load_settings(Path(args.data) / "campaign.toml")
    files = {"roster": settings.roster, "tests": settings.tests, "vaccinations": settings.vaccinations}
    rows = {name: parse_rows(read_table(path, INPUTS[name]).frame, INPUTS[name], settings.as_of).rows
            for name, path in files.items() if path is not None}
    with tempfile.TemporaryDirectory() as warm:  # Great Expectations' import and first context
        validate_sources({name: r.head(1000) for name, r in rows.items()}, INPUTS, settings.as_of, Path(warm))
    results = {"rows": {name: r.height for name, r in rows.items()}, "samples": {}}
    for n in args.samples:
        with tempfile.TemporaryDirectory() as root:
            t = time.perf_counter()
            suites = validate_sources(rows, INPUTS, settings.as_of, Path(root), n)
            secs = time.perf_counter() - t
        results["samples"][n] = {
            "seconds": round(secs, 2),
            "success": {name: s.success for name, s in suites.items()},
            "unexpected_share": {
                f"{name}.{e.column}": round(e.unexpected_count / e.element_count, 5)
                for name, s in suites.items() for e in s.expectations if e.unexpected_count and e.element_count},
        }
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
