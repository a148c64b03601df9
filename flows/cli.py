"""The gridsweep command line: `run` a refresh, `generate` synthetic data."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _prefect_environment(state: Path) -> None:
    """A plain run starts a temporary Prefect server; give it a home in the state folder and time to start."""
    home = (state / "prefect").resolve()
    home.mkdir(parents=True, exist_ok=True)  # Prefect creates its home but not the folders above it
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _run(args: argparse.Namespace) -> int:
    from flows.readers import InputError
    from flows.settings import SAMPLES, load_settings

    config = Path(args.config) if args.config else None
    if config is None and not (args.roster or args.tests):
        config = SAMPLES / "campaign.toml"
    try:
        settings = load_settings(
            config, roster=args.roster, tests=args.tests, vaccinations=args.vaccinations, since=args.since,
            as_of=args.as_of, out=args.out, db=args.db,
        )
    except (ValueError, OSError) as exc:
        print(f"gridsweep: {exc}", file=sys.stderr)
        return 2
    _prefect_environment(settings.duckdb.path.parent)
    from flows.refresh import refresh

    try:
        report = refresh(settings)
    except InputError as exc:
        print(f"gridsweep: bad input: {exc}", file=sys.stderr)
        print("gridsweep: nothing was written; the previous outputs are unchanged.", file=sys.stderr)
        return 2
    cov = report.coverage
    rate = cov["coverage_rate"]
    print(
        f"run {report.run_id}: {cov['in_scope']} residents in scope, {cov['tested']} tested, "
        f"{cov['untested']} untested ({'—' if rate is None else f'{rate:.1%}'} coverage); "
        f"outputs in {settings.out} ({report.timings['total']:.1f} s)"
    )
    for name, acc in report.accounting.items():
        print(f"  {name}: {acc['rows_read']} rows read, {acc['rows_used']} used, {acc['rows_quarantined']} quarantined")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from datetime import datetime

    from flows.generate import write_synthetic
    from transforms.synthetic import generate

    t = time.perf_counter()
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime(2022, 5, 20, 18, 0)
    data = generate(args.residents, args.seed, as_of)
    write_synthetic(data, Path(args.out))
    print(
        f"generated {data.roster.height} residents, {data.tests.height} test records, "
        f"{data.vaccinations.height} vaccination records into {args.out} in {time.perf_counter() - t:.1f} s"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridsweep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="match records against the roster and write call sheets")
    run.add_argument("--config", help="campaign TOML file (paths, round, thresholds)")
    run.add_argument("--roster", help="roster file (CSV, XLSX or Parquet)")
    run.add_argument("--tests", help="test-system export")
    run.add_argument("--vaccinations", help="vaccination-system export")
    run.add_argument("--since", help="start of the testing round (ISO date-time)")
    run.add_argument("--as-of", dest="as_of", help="end of the testing round (ISO date-time)")
    run.add_argument("--out", help="output folder (default ./out)")
    run.add_argument("--db", help="DuckDB file keeping every run (default state/gridsweep.duckdb)")
    run.set_defaults(func=_run)
    gen = sub.add_parser("generate", help="write synthetic roster, test and vaccination records")
    gen.add_argument("--residents", type=int, default=2000)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", required=True)
    gen.add_argument("--as-of", dest="as_of", help="end of the generated testing round")
    gen.set_defaults(func=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run" and not any(
        (args.config, args.roster, args.tests, args.vaccinations, args.since, args.as_of, args.out, args.db)
    ):
        args.out = "out"
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
