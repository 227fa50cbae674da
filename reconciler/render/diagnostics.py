"""Render manifest problems: one line each as text, or a JSON document."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from reconciler.errors import ManifestProblem


def write_problems_text(problems: Sequence[ManifestProblem], stream: TextIO) -> None:
    """``file:line:col: path: message``, one problem a line, then a count."""
    for problem in problems:
        stream.write(f"{problem}\n")
    noun = "problem" if len(problems) == 1 else "problems"
    stream.write(f"{len(problems)} {noun} found\n")


def write_validation_json(
    problems: Sequence[ManifestProblem], accounts: Sequence[str], stream: TextIO
) -> None:
    """``{"valid", "accounts", "problems"}`` with each problem as plain data."""
    document = {
        "format_version": 1,
        "valid": not problems,
        "accounts": list(accounts),
        "problems": [p.as_dict() for p in problems],
    }
    stream.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
