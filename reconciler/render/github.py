"""``-o github``: workflow commands on stdout, the job summary and the step outputs.

GitHub reads ``::command …::`` lines from a step's stdout, a markdown job summary from the file
``$GITHUB_STEP_SUMMARY`` and outputs from ``$GITHUB_OUTPUT`` (design.md §4, §8):

- ``::add-mask::`` for every key is written before anything else, so the runner hides a key
  even if something printed later held one;
- ``::error file=…,line=…::`` annotations at the manifest line, at most :data:`ANNOTATION_CAP`
  per kind and step; the others are counted in the summary;
- the summary (plan table first, then the details) is kept under :data:`SUMMARY_LIMIT` bytes
  by dropping whole sections from the end, never by failing the step;
- outputs use ``name=value``, and for multi-line values a heredoc with a random delimiter.

Values inside workflow commands are escaped as the runner expects (``%``, ``\\r``, ``\\n``;
and in properties also ``:`` and ``,``). Nothing here changes what the normal renderers write
on stdout. This module writes only the two files GitHub names, appending, never through a
symlink.
"""

from __future__ import annotations

import io
import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from reconciler.core.plan import Action, Plan
from reconciler.core.report import ApplyReport, Outcome
from reconciler.errors import ManifestProblem
from reconciler.render.comment import account_table, fence_for, plan_summary_line, plan_text
from reconciler.render.report import account_report_lines, closing_line
from reconciler.render.safe_text import markdown_text, safe_text

#: At most this many annotations of one kind per step (GitHub shows 10 per step anyway).
ANNOTATION_CAP = 10
#: GitHub refuses a job summary of 1 MiB or more; we stay a little under it.
SUMMARY_LIMIT = 1024 * 1024 - 4096
OUTPUT_NAMES = (
    "changes",
    "to_load",
    "to_reload",
    "to_replace",
    "to_delete",
    "plan_hash",
    "failure_reason",
    "json_plan_path",
)


def escape_data(value: str) -> str:
    """A workflow command's message, escaped as the runner unescapes it."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A workflow command's property value (``file=…``): data escaping plus ``:`` and ``,``."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def mask_commands(values: Iterable[str]) -> list[str]:
    """``::add-mask::VALUE`` for each distinct non-empty value, and each of its lines.

    A multi-line secret is masked line by line too: the runner matches single lines.
    """
    seen: list[str] = []
    for value in values:
        for part in (value.strip(), *value.strip().splitlines()):
            if part and part not in seen:
                seen.append(part)
    return [f"::add-mask::{escape_data(value)}" for value in seen]


@dataclass(frozen=True)
class Annotation:
    """One ``::error`` at a file and line; ``kind`` groups them for the cap."""

    kind: str
    message: str
    file: str = ""
    line: int = 0
    column: int = 0
    title: str = ""

    def command(self) -> str:
        """The workflow command line."""
        props = []
        if self.file:
            props.append(f"file={escape_property(self.file)}")
        if self.line:
            props.append(f"line={self.line}")
        if self.column:
            props.append(f"col={self.column}")
        if self.title:
            props.append(f"title={escape_property(safe_text(self.title))}")
        head = f"::error {','.join(props)}::" if props else "::error::"
        # Model ids and API messages come from outside: one line, no control characters.
        return head + escape_data(safe_text(self.message))


def capped(
    annotations: Sequence[Annotation], cap: int = ANNOTATION_CAP
) -> tuple[list[Annotation], dict[str, int]]:
    """The first ``cap`` annotations of each kind, and how many of each kind were left out."""
    shown: list[Annotation] = []
    seen: Counter[str] = Counter()
    for annotation in annotations:
        seen[annotation.kind] += 1
        if seen[annotation.kind] <= cap:
            shown.append(annotation)
    omitted = {kind: n - cap for kind, n in sorted(seen.items()) if n > cap}
    return shown, omitted


def problem_annotations(problems: Sequence[ManifestProblem]) -> list[Annotation]:
    """One annotation per manifest problem, at its file, line and column."""
    return [
        Annotation(
            kind="invalid-manifest",
            message=f"{p.path}: {p.message}" if p.path else p.message,
            file=p.file,
            line=p.line,
            column=p.column,
            title="reconciler: invalid manifest",
        )
        for p in problems
    ]


def _origin(origin: str) -> tuple[str, int]:
    file, _, line = origin.rpartition(":")
    return (file, int(line)) if file and line.isdigit() else (origin, 0)


def plan_annotations(plan: Plan) -> list[Annotation]:
    """One annotation per blocked model, at its declaration (or its account's)."""
    found = []
    for account in plan.accounts:
        for change in account.changes:
            if change.action is Action.BLOCKED:
                file, line = _origin(change.origin)
                found.append(
                    Annotation(
                        kind="blocked",
                        message=f"{account.account}/{change.model_id}: {change.reason}",
                        file=file,
                        line=line,
                        title="reconciler: blocked",
                    )
                )
    return found


def report_annotations(report: ApplyReport, origins: Mapping[str, str]) -> list[Annotation]:
    """One annotation per failed or blocked model of an apply; ``origins`` maps
    ``account/model`` (and ``account``) to ``file:line``."""
    found = []
    for account in report.accounts:
        for item in account.items:
            if item.outcome is Outcome.BLOCKED:
                kind = "blocked"
            elif item.failure_reason is not None:
                kind = "failed"
            else:
                continue
            where = origins.get(f"{account.account}/{item.model_id}", "") or origins.get(
                account.account, ""
            )
            file, line = _origin(where) if where else ("", 0)
            why = f" ({item.failure_reason})" if item.failure_reason else ""
            found.append(
                Annotation(
                    kind=kind,
                    message=f"{account.account}/{item.model_id}{why}: {item.message}",
                    file=file,
                    line=line,
                    title=f"reconciler: {kind}",
                )
            )
        if not account.items and account.failure_reason is not None:
            file, line = _origin(origins.get(account.account, ""))
            found.append(
                Annotation(
                    kind="failed",
                    message=f"{account.account} ({account.failure_reason}): {account.message}",
                    file=file,
                    line=line,
                    title="reconciler: failed",
                )
            )
    return found


# -- outputs ----------------------------------------------------------------------------------


def plan_outputs(
    plan: Plan | None, plan_hash: str, failure_reason: str, json_plan_path: str
) -> dict[str, str]:
    """The step outputs of design.md §8 for a plan (or none, e.g. invalid manifests)."""
    by_action: dict[Action, list[str]] = {a: [] for a in Action}
    for account in plan.accounts if plan is not None else ():
        for change in account.changes:
            by_action[change.action].append(f"{account.account}/{change.model_id}")
    return {
        "changes": "true" if plan is not None and plan.has_changes() else "false",
        "to_load": "\n".join(by_action[Action.LOAD]),
        "to_reload": "\n".join(by_action[Action.RELOAD]),
        "to_replace": "\n".join(by_action[Action.REPLACE]),
        "to_delete": "\n".join(by_action[Action.DELETE]),
        "plan_hash": plan_hash,
        "failure_reason": failure_reason,
        "json_plan_path": json_plan_path,
    }


def output_text(outputs: Mapping[str, str], token: Callable[[], str] | None = None) -> str:
    """``$GITHUB_OUTPUT`` lines: ``name=value``, or a heredoc with a random delimiter when the
    value spans lines (a fixed delimiter could be forged by a value that contains it)."""
    make = token or (lambda: secrets.token_hex(16))
    lines = []
    for name, value in outputs.items():
        if "\n" not in value and "\r" not in value:
            lines.append(f"{name}={value}\n")
            continue
        delimiter = f"ghadelimiter_{make()}"
        while delimiter in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(lines)


# -- the job summary --------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A block of the summary; dropped whole when the summary would be too big."""

    text: str
    keep: bool = False  # the head (table, verdict, heartbeat) is never dropped


def fit_summary(sections: Sequence[Section], limit: int = SUMMARY_LIMIT) -> str:
    """The sections that fit in ``limit`` UTF-8 bytes, in order, kept ones first in line;
    a closing note says how many were dropped."""
    note_room = 200
    used = sum(len(s.text.encode()) for s in sections if s.keep)
    chosen: list[Section] = []
    dropped = 0
    for section in sections:
        size = len(section.text.encode())
        if section.keep or used + size + note_room <= limit:
            chosen.append(section)
            used += 0 if section.keep else size
        else:
            dropped += 1
    text = "".join(s.text for s in chosen)
    if dropped:
        noun = "section" if dropped == 1 else "sections"
        text += f"\n_{dropped} {noun} left out to keep this summary under 1 MiB._\n"
    return text


def _omitted_note(omitted: Mapping[str, int]) -> str:
    if not omitted:
        return ""
    parts = ", ".join(f"{n} more {kind}" for kind, n in omitted.items())
    return f"\n_Annotations capped at {ANNOTATION_CAP} per kind: {parts} not annotated._\n"


def validate_summary(
    problems: Sequence[ManifestProblem], accounts: Sequence[str], omitted: Mapping[str, int]
) -> str:
    """The summary of ``validate``: the verdict, then one line per problem."""
    if not problems:
        head = f"## Reconciler validate\n\n{len(accounts)} accounts valid: {', '.join(accounts)}\n"
        return fit_summary([Section(head, keep=True)])
    head = f"## Reconciler validate\n\n**{len(problems)} problems** in the manifests.\n"
    head += _omitted_note(omitted)
    rows = [
        Section(
            f"- `{p.file}:{p.line}:{p.column}` "
            f"{markdown_text(str(p.path))}: {markdown_text(p.message)}\n"
        )
        for p in problems
    ]
    return fit_summary([Section(head + "\n", keep=True), *rows])


def plan_summary(
    plan: Plan, plan_hash: str, omitted: Mapping[str, int], notes: Sequence[str] = ()
) -> str:
    """The summary of ``plan``: the one-line summary and the table, then the plan per account."""
    head = f"## Reconciler plan\n\n{plan_summary_line(plan)}\n\n{account_table(plan)}\n"
    head += f"plan_hash: `{plan_hash}`\n" + _omitted_note(omitted)
    head += "".join(f"\n> {_md(note)}\n" for note in notes)
    return fit_summary([Section(head + "\n", keep=True), *_plan_sections(plan)])


def _plan_sections(plan: Plan) -> list[Section]:
    sections = []
    for account in plan.accounts:
        one = plan.model_copy(update={"accounts": (account,), "blockers": (), "unread": ()})
        text = plan_text(one)
        fence = fence_for(text)
        sections.append(
            Section(
                f"<details><summary>{_md(account.account)}</summary>\n\n"
                f"{fence}text\n{text}{fence}\n\n</details>\n\n"
            )
        )
    return sections


def apply_summary(
    report: ApplyReport,
    plan: Plan | None,
    omitted: Mapping[str, int],
    heartbeat: str,
    notes: Sequence[str] = (),
) -> str:
    """The summary of ``apply``: heartbeat, verdict, a table per account, then each account's
    items. The heartbeat line is always there, so a schedule that ran is visible."""
    head = f"## Reconciler apply\n\n{heartbeat}\n\n**{_md(closing_line(report))}**\n\n"
    head += "".join(f"> {_md(note)}\n\n" for note in notes)
    if report.accounts:
        head += "| account | api | converged | failure_reason | message |\n|---|---|---|---|---|\n"
        for account in report.accounts:
            mark = "yes" if account.converged else "**no**"
            head += (
                f"| `{_md(account.account)}` | {account.api} | {mark} | "
                f"{account.failure_reason or ''} | {markdown_text(account.message)} |\n"
            )
    head += _omitted_note(omitted)
    if plan is not None:
        head += f"\n{plan_summary_line(plan)}\n"
    sections = [Section(head + "\n", keep=True)]
    for account in report.accounts:
        lines = "\n".join(account_report_lines(account))
        fence = fence_for(lines)
        sections.append(
            Section(
                f"<details><summary>{_md(account.account)}</summary>\n\n"
                f"{fence}text\n{lines}\n{fence}\n\n</details>\n\n"
            )
        )
    return fit_summary(sections)


def _md(text: str) -> str:
    """Our own words (notes, account names, counts) on one line, safe in a table cell."""
    return " ".join(safe_text(text).split()).replace("|", "\\|").replace("<", "&lt;")


# -- writing ------------------------------------------------------------------------------------


@dataclass
class GithubSink:
    """Where ``-o github`` writes: stdout for commands, the summary and output files.

    Either file may be unset (a local try-out of ``-o github``); then nothing is written there.
    """

    stream: TextIO
    summary_path: str = ""
    output_path: str = ""
    written: list[str] = field(default_factory=list)

    @classmethod
    def from_environ(cls, stream: TextIO, environ: Mapping[str, str]) -> GithubSink:
        """The sink of the step GitHub runs, from ``GITHUB_STEP_SUMMARY``/``GITHUB_OUTPUT``."""
        return cls(stream, environ.get("GITHUB_STEP_SUMMARY", ""), environ.get("GITHUB_OUTPUT", ""))

    def commands(self, lines: Iterable[str]) -> None:
        """Workflow command lines on stdout, flushed so they precede later output."""
        for line in lines:
            self.stream.write(line + "\n")
        self.stream.flush()

    def notice(self, message: str) -> None:
        """A ``::notice::`` line."""
        self.commands([f"::notice::{escape_data(message)}"])

    def summary(self, markdown: str) -> None:
        """Append ``markdown`` to the job summary."""
        if self.summary_path:
            _append(Path(self.summary_path), markdown)

    def outputs(self, outputs: Mapping[str, str]) -> None:
        """Append the step outputs."""
        if self.output_path:
            _append(Path(self.output_path), output_text(outputs))


def _append(path: Path, text: str) -> None:
    """Append to ``path``, refusing a symlink (the runner creates plain files)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o644)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def render_to_string(write: Callable[[TextIO], None]) -> str:
    """What a stream writer writes, as a string."""
    buffer = io.StringIO()
    write(buffer)
    return buffer.getvalue()
