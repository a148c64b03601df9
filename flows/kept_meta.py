"""The meta.json of a store kept between refreshes (the sorted decisions, the rulings, the unlinked tests'
facts): what it holds and under which key, read as nothing when it is missing or torn, and replaced whole, so
a refresh that dies while writing it leaves the last one."""

from __future__ import annotations

import json
from pathlib import Path

_META = "meta.json"


def read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / _META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_meta(folder: Path, meta: dict) -> None:
    tmp = folder / (_META + ".new")
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    tmp.replace(folder / _META)
