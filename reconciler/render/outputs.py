"""Which renderer writes which result in which ``-o`` format: one table per result type.

Every renderer of every table has one signature, ``(result, streams)``: the result goes to
the command's standard output; what is a diagnostic rather than the result (a manifest's
problems, as text) goes to its standard error. The CLI looks the renderer up by its ``-o``
value and calls it: adding a format is a row here, not a branch in each command. ``github``
writes the text form into the job's log; the GitHub step adds annotations, summary and outputs
beside it. A table's order is the order of its ``-o`` choices in ``--help``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO, TypeAlias, TypeVar

from reconciler.core.plan import Plan
from reconciler.core.report import ApplyReport
from reconciler.core.status import AccountStatus
from reconciler.render.diagnostics import Validation, write_problems_text, write_validation_json
from reconciler.render.markdown import write_plan_markdown
from reconciler.render.plan_json import write_plan_json
from reconciler.render.plan_text import write_plan_text
from reconciler.render.report import write_report_json, write_report_text
from reconciler.render.safe_text import safe_text
from reconciler.render.status import write_status_json, write_status_text

_Result = TypeVar("_Result")


@dataclass(frozen=True)
class Streams:
    """Where a command writes: its result on ``out``, diagnostics on ``err``."""

    out: TextIO
    err: TextIO


Renderer: TypeAlias = Callable[[_Result, Streams], None]


def _on_out(write: Callable[[_Result, TextIO], None]) -> Renderer[_Result]:
    """A writer of one stream as a renderer: the result goes to standard output."""

    def render(result: _Result, streams: Streams) -> None:
        write(result, streams.out)

    return render


def write_validation_text(result: Validation, streams: Streams) -> None:
    """The problems, one a line and counted, on stderr; else ``2 accounts valid: a, b``."""
    if result.problems:
        write_problems_text(result.problems, streams.err)
        return
    noun = "account" if len(result.accounts) == 1 else "accounts"
    names = safe_text(", ".join(result.accounts))
    streams.out.write(f"{len(result.accounts)} {noun} valid: {names}\n")


def _write_validation_json(result: Validation, streams: Streams) -> None:
    write_validation_json(result.problems, result.accounts, streams.out)


PLAN_RENDERERS: Mapping[str, Renderer[Plan]] = {
    "json": _on_out(write_plan_json),
    "markdown": _on_out(write_plan_markdown),
    "text": _on_out(write_plan_text),
    "github": _on_out(write_plan_text),
}
REPORT_RENDERERS: Mapping[str, Renderer[ApplyReport]] = {
    "json": _on_out(write_report_json),
    "text": _on_out(write_report_text),
    "github": _on_out(write_report_text),
}
STATUS_RENDERERS: Mapping[str, Renderer[Sequence[AccountStatus]]] = {
    "text": _on_out(write_status_text),
    "json": _on_out(write_status_json),
}
VALIDATION_RENDERERS: Mapping[str, Renderer[Validation]] = {
    "text": write_validation_text,
    "json": _write_validation_json,
    "github": write_validation_text,
}
