"""The gridsweep command line: `run` a refresh, `generate` synthetic data."""

from __future__ import annotations

import argparse
import gc
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
    from flows.loading import start_fork_server

    start_fork_server()  # its imports overlap Prefect's and its server's start
    from flows.refresh import refresh

    # What the imports made (Prefect, Great Expectations' pieces, polars, DuckDB: about a million objects)
    # lives as long as the process: out of the collector's way, the full collections a refresh's own objects
    # set off do not walk it each time (0.7 s of a 1M-resident refresh). Publishing freezes what the flow
    # made as well, and its unfreeze at the end hands all of it back for the run's record.
    gc.freeze()
    try:
        report = refresh(settings)
    except InputError as exc:
        print(f"gridsweep: bad input: {exc}", file=sys.stderr)
        print("gridsweep: nothing was written; the previous outputs are unchanged.", file=sys.stderr)
        return 2
    except Exception as exc:
        from flows.disk_space import is_disk_full, tell

        if not is_disk_full(exc):
            raise
        print(tell(exc, settings.out, settings.duckdb.path.parent), file=sys.stderr)  # as the flow logged it
        return 3
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

    from flows.generate import write_city

    t = time.perf_counter()
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime(2022, 5, 20, 18, 0)
    n = write_city(args.residents, args.seed, as_of, Path(args.out))
    print(
        f"generated {n['residents']} residents, {n['tests']} test records, "
        f"{n['vaccinations']} vaccination records into {args.out} in {time.perf_counter() - t:.1f} s"
    )
    return 0


DEPLOYMENT = "street-refresh"
FLOW_NAME = "gridsweep-inbox-refresh"


def _refresh(args: argparse.Namespace) -> int:
    from flows.readers import InputError
    from flows.settings import load_campaign

    config = Path(args.config).resolve()
    try:
        settings, _ = load_campaign(config)
    except (ValueError, OSError) as exc:
        print(f"gridsweep: {exc}", file=sys.stderr)
        return 2
    _prefect_environment(settings.duckdb.path.parent)
    from flows.inbox import refresh_inbox

    try:
        summary = refresh_inbox(str(config))
    except InputError as exc:
        print(f"gridsweep: bad input: {exc}", file=sys.stderr)
        print("gridsweep: the file stays in the inbox and the previous outputs are unchanged.", file=sys.stderr)
        return 2
    print(summary["message"])
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Serves the inbox refresh from this process: the server schedules it, this process runs it."""
    import signal
    from datetime import datetime, timedelta

    from flows.settings import load_campaign

    config = Path(args.config).resolve()
    settings, _ = load_campaign(config)
    if not os.environ.get("PREFECT_API_URL"):
        print("gridsweep: set PREFECT_API_URL to the Prefect server (e.g. http://127.0.0.1:4200/api)", file=sys.stderr)
        return 2
    from prefect.schedules import Interval

    from flows.inbox import refresh_inbox

    def stop(signum, frame):  # SIGTERM from systemd or kill: shut down like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    schedule = Interval(timedelta(seconds=args.interval), anchor_date=datetime(2022, 1, 1), timezone=args.timezone)
    try:
        refresh_inbox.serve(
            name=args.name, schedules=[schedule], parameters={"config": str(config)}, global_limit=1,
            pause_on_shutdown=False, description=f"Inbox refresh for {settings.out}",
        )
    except KeyboardInterrupt:
        pass
    return 0


def _trigger(args: argparse.Namespace) -> int:
    from prefect.deployments import run_deployment

    if not os.environ.get("PREFECT_API_URL"):
        print("gridsweep: set PREFECT_API_URL to the Prefect server (e.g. http://127.0.0.1:4200/api)", file=sys.stderr)
        return 2
    run = run_deployment(f"{FLOW_NAME}/{args.name}", timeout=args.wait, poll_interval=1, as_subflow=False)
    state = run.state.type.value if run.state else "UNKNOWN"
    print(f"flow run {run.name} ({run.id}): {state}")
    if args.wait and state != "COMPLETED":
        return 1
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from flows.feedback import load_feedback
    from flows.readers import InputError
    from flows.settings import SAMPLES, load_settings

    config = Path(args.config) if args.config else SAMPLES / "campaign.toml"
    try:
        settings = load_settings(config, db=args.db)
        counts = load_feedback([Path(p) for p in args.files], settings.duckdb)
    except InputError as exc:
        print(f"gridsweep: bad input: {exc}", file=sys.stderr)
        print("gridsweep: no verdict was stored.", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"gridsweep: {exc}", file=sys.stderr)
        return 2
    print(f"{counts['files']} file(s): {counts['new_call_attempts']} new call outcomes "
          f"({counts['call_attempts'] - counts['new_call_attempts']} already loaded), {counts['confirmed']} confirmed "
          f"and {counts['rejected']} rejected verify rows; stored in {settings.duckdb.path}; the next refresh uses them")
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
    ref = sub.add_parser("refresh", help="one inbox refresh now (load new exports, recompute, publish)")
    ref.add_argument("--config", required=True, help="campaign TOML with [inbox], [round] and [paths]")
    ref.set_defaults(func=_refresh)
    srv = sub.add_parser("serve", help="serve the two-hourly inbox refresh to a Prefect server")
    srv.add_argument("--config", required=True)
    srv.add_argument("--name", default=DEPLOYMENT)
    srv.add_argument("--interval", type=int, default=7200, help="seconds between scheduled refreshes")
    srv.add_argument("--timezone", default="Asia/Shanghai")
    srv.set_defaults(func=_serve)
    trg = sub.add_parser("trigger", help="ask the server for a refresh now")
    trg.add_argument("--name", default=DEPLOYMENT)
    trg.add_argument("--wait", type=float, default=0, help="seconds to wait for the run to finish (0: don't)")
    trg.set_defaults(func=_trigger)
    fb = sub.add_parser("feedback", help="load returned call sheets: call outcomes and settled verify rows")
    fb.add_argument("files", nargs="+", help="returned .xlsx workbooks (or CSVs with the same headers)")
    fb.add_argument("--config", help="campaign TOML (for the database path; default: the samples')")
    fb.add_argument("--db", help="DuckDB file (default from the campaign: state/gridsweep.duckdb)")
    fb.set_defaults(func=_feedback)
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
