"""The layout's import rules (docs/architecture.md, "The house"), read from the source with `ast`:

- `classroom/core` imports nothing of the project outside `classroom.core`, and nothing that does
  I/O or reads a clock or randomness (of the rest: the standard library and pydantic);
- the rest of `classroom/` (registry, HTTP API) imports neither `signaling` nor `recorder`: only the
  composition root (`classroom/app.py`, `classroom/__main__.py`) assembles them, and nothing
  imports the root;
- `signaling` and `recorder` use `classroom`, not each other;
- no package imports another's private (`_underscore`) module or name.

Every import counts, also one inside a function or under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("classroom", "signaling", "recorder")
CORE = "classroom.core"
COMPOSITION_ROOT = frozenset({"classroom.app", "classroom.__main__"})
# What the pure core may import besides itself: the standard library, less what does I/O or reads
# a clock or randomness, and pydantic.
CORE_THIRD_PARTY = frozenset({"pydantic", "pydantic_core"})
CORE_IMPURE = frozenset(
    {"asyncio", "os", "random", "secrets", "socket", "sqlite3", "subprocess", "threading", "time", "uuid"}
)
# Packages that must not import one another: each uses `classroom` only.
SIBLINGS = {"signaling": "recorder", "recorder": "signaling"}


@dataclass(frozen=True)
class Module:
    name: str  # dotted
    source: str
    is_package: bool  # an __init__.py: its relative imports start from itself


def project_modules() -> list[Module]:
    out = []
    for package in (*PACKAGES, "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            out.append(Module(".".join(parts), path.read_text(encoding="utf-8"), is_package))
    return out


def group(module: str) -> str | None:
    """The package a module belongs to for these rules (the core counts as one of its own), or
    None for anything outside the project."""
    if module == CORE or module.startswith(CORE + "."):
        return CORE
    top = module.split(".")[0]
    return top if top in (*PACKAGES, "bench") else None


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports(module: Module, known: set[str]) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names taken from it) for every import in the module."""
    out = []
    for node in ast.walk(ast.parse(module.source)):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name.split(".")
                if not module.is_package:
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = []
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:  # `from . import wire`: the module itself is imported
                    out.append((node.lineno, sub, []))
                else:
                    names.append(alias.name)
            if names:
                out.append((node.lineno, target, names))
    return out


def violations(modules: list[Module]) -> list[str]:
    known = {m.name for m in modules}
    found = []
    for module in modules:
        here = group(module.name)
        for line, target, names in imports(module, known):
            where = f"{module.name}:{line} imports {target}"
            there = group(target)
            top = target.split(".")[0]
            if here == CORE:
                if there is not None and there != CORE:
                    found.append(f"{where}: the core imports nothing outside classroom.core")
                elif there is None and (
                    top in CORE_IMPURE or (top not in sys.stdlib_module_names and top not in CORE_THIRD_PARTY)
                ):
                    found.append(f"{where}: the core does no I/O and reads no clock or randomness")
            if target in COMPOSITION_ROOT and module.name not in COMPOSITION_ROOT:
                found.append(f"{where}: nothing imports the composition root")
            if here == "classroom" and module.name not in COMPOSITION_ROOT and there in SIBLINGS:
                found.append(f"{where}: classroom/ uses neither signaling nor recorder (only app.py does)")
            if here in SIBLINGS and there == SIBLINGS[here]:
                found.append(f"{where}: {here} and {there} use classroom, not each other")
            if there is not None and there != here:
                hidden = [p for p in target.split(".") if private(p)] + [n for n in names if private(n)]
                if hidden:
                    found.append(f"{where}: {', '.join(hidden)} is private to {there}")
    return found


def test_the_layout_holds():
    modules = project_modules()
    assert {m.name for m in modules} >= {"classroom.core", "signaling.hub", "recorder.recorder"}
    assert violations(modules) == []


def test_signaling_package_says_what_it_is():
    # Two branches add this file; it must be byte-identical in both.
    text = (ROOT / "signaling" / "__init__.py").read_text(encoding="utf-8")
    line = "Classcast's real-time edge: socket.io, websockets, frame fan-out, WebRTC signaling and media."
    assert text == f'"""{line}"""\n'


def test_each_broken_rule_is_found():
    # The checker itself: a module breaking each rule once, among the real ones.
    bad = {
        "classroom.core.bad": (
            "import time\nimport aiohttp\nfrom ..store import SessionInfo\nfrom classroom import http\n"
        ),
        "classroom.badlive": (
            "from signaling.fanout import FrameFanout\n"
            "def f():\n    from recorder import recorder\n"
            "from .app import HUB\n"
        ),
        "signaling.bad": "from recorder.replay import Recording\n",
        "recorder.bad": (
            "from classroom.core.session import _ms\nfrom signaling import hub\n"
            "from classroom._secret import y\nfrom classroom.api import _describe as d\n"
        ),
    }
    modules = project_modules() + [Module(name, src, False) for name, src in bad.items()]
    found = violations(modules)
    expected = [
        "classroom.core.bad:1 imports time: the core does no I/O",
        "classroom.core.bad:2 imports aiohttp: the core does no I/O",
        "classroom.core.bad:3 imports classroom.store: the core imports nothing outside",
        "classroom.core.bad:4 imports classroom.http: the core imports nothing outside",
        "classroom.badlive:1 imports signaling.fanout: classroom/ uses neither",
        "classroom.badlive:3 imports recorder.recorder: classroom/ uses neither",
        "classroom.badlive:4 imports classroom.app: nothing imports the composition root",
        "signaling.bad:1 imports recorder.replay: signaling and recorder use classroom",
        "recorder.bad:1 imports classroom.core.session: _ms is private to classroom.core",
        "recorder.bad:2 imports signaling.hub: recorder and signaling use classroom",
        "recorder.bad:3 imports classroom._secret: _secret is private to classroom",
        "recorder.bad:4 imports classroom.api: _describe is private to classroom",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in found), (start, found)
    assert len(found) == len(expected), found
