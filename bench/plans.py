"""What the bench harnesses share about their command line: a plan from a mode and the options
given, and the raw results saved as JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

P = TypeVar("P")


def plan_from(plans: dict[str, P], mode: str, **given: Any) -> P:
    """The mode's plan with each field given on the command line (not None) in its place; the
    mode's own plan is left as it is."""
    return replace(plans[mode], **{name: value for name, value in given.items() if value is not None})  # type: ignore[type-var]


def save_json(path: Path, results: Any) -> None:
    """The raw results, for `--from-json` to render again later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
