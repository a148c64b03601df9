"""Fingerprints of the code a kept result was made by: a new release that changes that code starts afresh.

Three things are kept between refreshes because they cost most of a refresh to make again, and each depends
on code as much as on data: the normalised inputs (flows.normalised_store), each source as loaded
(flows.loaded_sources) and each record's link decision (flows.refresh.link). A result kept under another
fingerprint is never used.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path
from types import ModuleType


def code_fingerprint(modules: list[ModuleType | Path], packages: tuple[str, ...] = ()) -> str:
    """The modules' source text (a module or a path to a .py file) and the packages' versions."""
    h = hashlib.sha256()
    for module in modules:
        path = Path(module.__file__) if isinstance(module, ModuleType) else module
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for package in packages:
        h.update(f"{package}={version(package)}\0".encode())
    return h.hexdigest()[:16]
