"""What a run keeps beside its output folder OUT, each named `.OUT.<what>-<run id>` on OUT's file system, so
a rename moves it in or out: the staging folder the outputs are written in, the output moved aside while the
new one is moved in (previous), the replaced output being emptied into the pool (retiring), and the
decisions' CSV parts written by a process of its own (matches). One place names them, and finds them again by what they are: a run killed
half-way leaves them behind, and the next one clears them or takes them back."""

from __future__ import annotations

import glob
from pathlib import Path

STAGING, PREVIOUS, RETIRING, MATCHES = "staging", "previous", "retiring", "matches"


def beside(out: Path, what: str, run_id: str, suffix: str = "") -> Path:
    return out.parent / f".{out.name}.{what}-{run_id}{suffix}"


def found_beside(out: Path, what: str, suffix: str = "") -> list[Path]:
    """Those of one kind beside out, in the order of their run ids (the oldest run's first)."""
    return sorted(out.parent.glob(f".{glob.escape(out.name)}.{what}-*{glob.escape(suffix)}"))
