"""One typed settings object, read from a campaign TOML file and the environment, passed down explicitly."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path

from transforms.comparison import ScoreSettings
from transforms.decision import DecisionSettings
from transforms.linking import BlockingSettings
from transforms.outcomes import EscalationSettings
from transforms.rules import Round, RuleSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "data_samples"


@dataclass(frozen=True)
class DuckDBSettings:
    path: Path
    memory_limit: str = "4GB"
    threads: int = 2
    temp_directory: Path | None = None
    # The last refreshes whose call lists the history keeps (who was listed, where, why): a day of two-hourly
    # refreshes. Older ones live on in the untested counts escalation reads.
    keep_call_lists: int = 12


@dataclass(frozen=True)
class Settings:
    roster: Path
    tests: Path
    vaccinations: Path | None
    since: datetime
    as_of: datetime
    out: Path
    duckdb: DuckDBSettings
    blocking: BlockingSettings = field(default_factory=BlockingSettings)
    scoring: ScoreSettings = field(default_factory=ScoreSettings)
    decision: DecisionSettings = field(default_factory=DecisionSettings)
    rules: RuleSettings = field(default_factory=RuleSettings)
    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    min_row_fraction: float = 0.5  # a load with fewer rows than this share of the last one is refused
    stop_on_failed_expectations: bool = True  # a file failing its suite stops the refresh
    expectation_sample_rows: int = 100_000  # a bigger file's suite runs on a random sample this size; 0: all

    @property
    def round(self) -> Round:
        return Round(since=self.since, as_of=self.as_of)


@dataclass(frozen=True)
class InboxSettings:
    path: Path
    archive: Path
    settle_seconds: float = 10.0  # a file modified more recently is still being copied in


def parse_time(text: str, what: str, *, timezone: str = "Asia/Shanghai") -> datetime:
    """ISO date or date-time; 'now' is the wall clock in the campaign's time zone (records carry local time)."""
    if str(text).strip().lower() == "now":
        from zoneinfo import ZoneInfo

        return datetime.now(ZoneInfo(timezone)).replace(tzinfo=None, microsecond=0)
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError as exc:
        raise ValueError(f"{what}: {text!r} is not an ISO date or date-time (e.g. 2022-05-20T18:00)") from exc
    return value.replace(tzinfo=None)


def _section(cls, values: dict | None):
    base = cls()
    if not values:
        return base
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown settings in [{cls.__name__}]: {', '.join(sorted(unknown))}")
    return replace(base, **values)


def _under(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p


def load_campaign(config: Path) -> tuple[Settings, InboxSettings]:
    """Settings for the inbox refresh: the campaign file names the inbox, the archive and the round."""
    with open(config, "rb") as fh:
        doc = tomllib.load(fh)
    base = Path(config).resolve().parent
    box = doc.get("inbox", {})
    inbox = InboxSettings(
        path=_under(base, box.get("path", "inbox")),
        archive=_under(base, box.get("archive", "archive")),
        settle_seconds=float(box.get("settle_seconds", 10)),
    )
    settings = load_settings(
        config, roster=str(inbox.path / "roster"), tests=str(inbox.path / "tests"),
        vaccinations=str(inbox.path / "vaccinations"),
    )
    return settings, inbox


def load_settings(
    config: Path | None = None,
    *,
    roster: str | None = None,
    tests: str | None = None,
    vaccinations: str | None = None,
    since: str | None = None,
    as_of: str | None = None,
    out: str | None = None,
    db: str | None = None,
) -> Settings:
    """Command-line values win over the campaign file; the environment sets machine limits."""
    doc: dict = {}
    base = Path.cwd()
    if config is not None:
        with open(config, "rb") as fh:
            doc = tomllib.load(fh)
        base = Path(config).resolve().parent
    inputs = doc.get("inputs", {})
    rnd = doc.get("round", {})

    def path(value: str | None, default: str | None) -> Path | None:
        v = value if value is not None else default
        if v is None or v == "":
            return None
        p = Path(v)
        return p if p.is_absolute() or value is not None else base / p

    roster_p = path(roster, inputs.get("roster"))
    tests_p = path(tests, inputs.get("tests"))
    if roster_p is None or tests_p is None:
        raise ValueError("both a roster (--roster) and test records (--tests) are needed")
    since_t = since or rnd.get("since")
    as_of_t = as_of or rnd.get("as_of")
    if since_t is None or as_of_t is None:
        raise ValueError("the testing round needs --since and --as-of (or [round] since/as_of in the campaign file)")
    tz = rnd.get("timezone", "Asia/Shanghai")
    since_v, as_of_v = parse_time(since_t, "--since", timezone=tz), parse_time(as_of_t, "--as-of", timezone=tz)
    if since_v > as_of_v:
        raise ValueError(f"--since ({since_v}) is after --as-of ({as_of_v})")
    paths = doc.get("paths", {})
    out_p = Path(out) if out else _under(base, paths.get("out", "out"))
    state = Path(os.environ["GRIDSWEEP_STATE_DIR"]) if "GRIDSWEEP_STATE_DIR" in os.environ else (
        _under(base, paths["state"]) if "state" in paths else Path("state"))
    ddb = doc.get("duckdb", {})
    duck = DuckDBSettings(
        path=Path(db) if db else state / "gridsweep.duckdb",
        memory_limit=os.environ.get("GRIDSWEEP_DUCKDB_MEMORY_LIMIT", ddb.get("memory_limit", "4GB")),
        threads=int(os.environ.get("GRIDSWEEP_DUCKDB_THREADS", ddb.get("threads", 2))),
        temp_directory=Path(ddb["temp_directory"]) if "temp_directory" in ddb else state / "duckdb_tmp",
        keep_call_lists=int(ddb.get("keep_call_lists", DuckDBSettings.keep_call_lists)),
    )
    return Settings(
        roster=roster_p,
        tests=tests_p,
        vaccinations=path(vaccinations, inputs.get("vaccinations")),
        since=since_v,
        as_of=as_of_v,
        out=out_p,
        duckdb=duck,
        blocking=_section(BlockingSettings, doc.get("blocking")),
        scoring=_section(ScoreSettings, doc.get("scoring")),
        decision=_section(DecisionSettings, doc.get("decision")),
        rules=_section(RuleSettings, doc.get("rules")),
        escalation=_section(EscalationSettings, doc.get("escalation")),
        min_row_fraction=float(doc.get("checks", {}).get("min_row_fraction", 0.5)),
        stop_on_failed_expectations=bool(doc.get("checks", {}).get("stop_on_failed_expectations", True)),
        expectation_sample_rows=int(doc.get("checks", {}).get("expectation_sample_rows", 100_000)),
    )
