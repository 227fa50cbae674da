"""Render manifest problems: one line each as text, or a JSON document.

A problem quotes a file name and, often, the value that is wrong: both come from a pull
request, so the text form passes through :func:`~reconciler.render.safe_text.safe_text`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from reconciler.errors import ManifestProblem
from reconciler.render.safe_text import safe_json, safe_text


@dataclass(frozen=True)
class Validation:
    """What ``validate`` found: the accounts of valid manifests, or the problems of invalid ones."""

    accounts: tuple[str, ...] = ()
    problems: tuple[ManifestProblem, ...] = ()


def write_problems_text(problems: Sequence[ManifestProblem], stream: TextIO) -> None:
    """``file:line:col: path: message``, one problem a line, then a count."""
    for problem in problems:
        stream.write(f"{safe_text(str(problem))}\n")
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
    stream.write(safe_json(document))
