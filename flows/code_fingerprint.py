"""Fingerprints of the code a kept result was made by: a new release that changes that code starts afresh.

What is kept between refreshes costs much of a refresh to make again and depends on code as much as on
data: each source as loaded (flows.loaded_sources), each record's link decision (flows.refresh.link), the
rulings (flows.kept_rules), the roster's duplicates and places (flows.roster_derived), the books and pages
(flows.publish.layout_fingerprint). A result kept under another fingerprint is never used; a fingerprint
that covers more code than the result depends on throws results away for nothing (at 20M residents, minutes
of work), so each is seeded with the modules that make its result, not the flow that calls them
(tests/test_code_fingerprints.py).
"""

from __future__ import annotations

import ast
import hashlib
from importlib.metadata import version
from pathlib import Path
from types import ModuleType


def with_transforms_they_import(paths: list[Path]) -> list[Path]:
    """paths and every module of the transforms package they import, directly or through each other: what
    a result made by that code depends on, found from the source so a new import is never left out."""
    root = Path(__file__).resolve().parents[1]
    found, todo = [], list(paths)
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.append(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.split(".")[0] == "transforms" and name != "transforms":
                    todo.append(root / (name.replace(".", "/") + ".py"))
    return sorted(found)


def code_fingerprint(modules: list[ModuleType | Path], packages: tuple[str, ...] = ()) -> str:
    """The modules' code (a module or a path to a .py file: code_text) and the packages' versions."""
    h = hashlib.sha256()
    for module in modules:
        path = Path(module.__file__) if isinstance(module, ModuleType) else module
        h.update(path.name.encode() + b"\0" + code_text(path) + b"\0")
    for package in packages:
        h.update(f"{package}={version(package)}\0".encode())
    return h.hexdigest()[:16]


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def code_text(path: Path) -> bytes:
    """A module's syntax tree without its docstrings, comments and layout: what the code does, not how it is
    explained. When the source text was hashed, a docstring fixed in a keyed module made a city's next refresh
    redo that result (at 20M residents, a rules module's docstring: every resident ruled again, minutes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, _DOCUMENTED) and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()
