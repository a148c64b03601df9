"""Each resident's products from the last refresh (transforms.rule_parts), kept in the state folder with the
digest of what they were made from (transforms.resident_digests), so the next refresh rules only the
residents whose roster row, linked records or call outcomes changed.

Two hours of test records reach a twentieth of a city's residents; ruling all of them again was 165 of the
rules' 264 s in a 20M incremental refresh. The products are kept under a key: the round, the rules'
settings, the code that rules (the modules and the library it runs on) and the roster's columns. Under
another key nothing kept is used. The folder is replaced whole (written beside, then renamed), so a refresh
that fails while writing leaves the last products or none, never a mixture. It holds names and phones, as the
database beside it does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from functools import cache
from pathlib import Path

import polars as pl

import transforms.rule_parts
from flows.code_fingerprint import code_fingerprint, with_transforms_they_import
from transforms.rule_parts import Products, RuleInputs

_FILES = ("facts", "call_list", "wrong_numbers")


@cache
def ruling_code_fingerprint() -> str:
    root = Path(transforms.rule_parts.__file__).parent
    seeds = [root / f"{m}.py" for m in ("rule_parts", "resident_digests")]
    return code_fingerprint(with_transforms_they_import(seeds), ("polars",))


def rulings_key(given: RuleInputs, roster_schema: pl.Schema) -> str:
    """What every kept product depends on besides the resident's own inputs."""
    parts = {"round": asdict(given.round), "rules": asdict(given.rules), "code": ruling_code_fingerprint(),
             "roster": {name: str(dtype) for name, dtype in roster_schema.items()}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class KeptRulings:
    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key

    def load(self) -> Products | None:
        """The last refresh's products (facts with their digest) if they were made under this key."""
        try:
            if json.loads((self.folder / "key.json").read_text(encoding="utf-8"))["key"] != self.key:
                return None
            return Products(*(pl.read_parquet(self.folder / f"{name}.parquet") for name in _FILES))
        except (OSError, ValueError, KeyError, pl.exceptions.PolarsError):
            return None  # none kept, or unreadable: every resident is ruled

    def save(self, products: Products) -> None:
        new = self.folder.with_name(self.folder.name + ".new")
        old = self.folder.with_name(self.folder.name + ".old")
        for stale in (new, old):
            shutil.rmtree(stale, ignore_errors=True)
        new.mkdir(parents=True)
        for name in _FILES:
            getattr(products, name).write_parquet(new / f"{name}.parquet", compression="zstd")
        (new / "key.json").write_text(json.dumps({"key": self.key}), encoding="utf-8")
        if self.folder.exists():
            self.folder.rename(old)
        new.rename(self.folder)
        shutil.rmtree(old, ignore_errors=True)
