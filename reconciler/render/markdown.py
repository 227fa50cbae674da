"""The plan as GitHub-flavoured markdown, for a pull-request comment and the job summary.

The comment starts with a hidden marker that carries the plan's digest
(``<!-- reconciler-plan: sha256:… -->``), so a later run can find its own comment and a
merge-time apply can tell whether it plans what was reviewed. Then a title with the counts,
the blockers as a warning, one table per account and the field changes folded in
``<details>``. GitHub refuses comments over 65,536 characters, so the output is cut to
``max_chars``: field changes go first, then table rows, always keeping the marker and the
summary and saying how much was left out.

Text from outside (model ids, reasons, notes, field values) goes through
:mod:`reconciler.render.safe_text`: HTML and markdown show literally, ``@name`` and ``#123``
notify nobody, and no control character or workflow command passes. This module only builds a
string (or writes it to a given stream). It never posts, never chooses an exit code and never
holds a key (a plan has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan
from reconciler.render.plan_text import (
    blocker_messages,
    change_counts,
    field_line,
    other_counts,
    reported_changes,
)
from reconciler.render.safe_text import code_fence, markdown_code, markdown_text, safe_text

MARKER_PREFIX = "<!-- reconciler-plan: "
DEFAULT_MAX_CHARS = 65_000
#: Room kept for the closing note of a truncated comment.
_RESERVE = 400
_TABLE_HEAD = "| | model | action | reason |\n|---|---|---|---|\n"


def plan_marker(plan: Plan) -> str:
    """The hidden marker that identifies a plan comment and carries the plan's digest."""
    return f"{MARKER_PREFIX}{plan.digest()} -->"


def write_plan_markdown(plan: Plan, stream: TextIO) -> None:
    """``plan -o markdown``: the plan as a pull-request comment."""
    stream.write(render_plan_markdown(plan))


def render_plan_markdown(plan: Plan, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The plan as markdown of at most ``max_chars`` characters."""
    head = _head(plan)
    sections = [_Section.of(account, plan.ledger_available) for account in plan.accounts]
    full = head + "".join(section.text(with_details=True) for section in sections)
    if len(full) <= max_chars:
        return full
    return _truncated(head, sections, max_chars)


@dataclass(frozen=True)
class _Section:
    """One account: its opening (title, notes, table head), table rows and field details."""

    opening: str
    rows: tuple[str, ...]
    details: str

    @classmethod
    def of(cls, account: AccountPlan, ledger_available: bool) -> _Section:
        shown = [c for c in account.changes if c.action is not Action.NOOP]
        shown += reported_changes(account, ledger_available=ledger_available)
        shown.sort(key=lambda change: change.model_id)
        opening = f"#### {_code(account.account)} ({account.api})\n\n" + _account_notes(account)
        if not shown:
            return cls(opening + "No changes.\n\n", (), "")
        rows = tuple(_row(change) for change in shown)
        return cls(opening + _TABLE_HEAD, rows, _details(shown))

    def text(self, *, with_details: bool) -> str:
        closing = "\n" if self.rows else ""
        details = self.details if with_details else ""
        return self.opening + "".join(self.rows) + closing + details


def _head(plan: Plan) -> str:
    if plan.has_changes():
        title = f"### Reconciler plan: {change_counts(plan)}\n\n{other_counts(plan)}.\n\n"
        if plan.unread:
            title += f"**Incomplete:** could not read {_inline(', '.join(plan.unread))}.\n\n"
    else:
        title = "### Reconciler plan: no changes\n\n" + _no_change_text(plan) + "\n\n"
    return f"{plan_marker(plan)}\n{title}{_blocker_warning(plan)}{_ledger_note(plan)}"


def _no_change_text(plan: Plan) -> str:
    if plan.unread:
        return f"**Incomplete:** could not read {_inline(', '.join(plan.unread))}."
    if plan.counts()[Action.BLOCKED.value]:
        return f"{other_counts(plan)}."
    return "Every account matches its manifests."


def _blocker_warning(plan: Plan) -> str:
    blockers = blocker_messages(plan)
    if not blockers:
        return ""
    items = "".join(f"> - {_inline(blocker)}\n" for blocker in blockers)
    return f"> [!WARNING]\n> **Apply will refuse to run:**\n{items}\n"


def _ledger_note(plan: Plan) -> str:
    if plan.ledger_available:
        return ""
    return (
        "> [!NOTE]\n> No ledger was available: spec changes (replace) and `prune: managed` "
        "were not detected.\n\n"
    )


def _account_notes(account: AccountPlan) -> str:
    lines = [f"**Blocked:** {_inline(blocker)}\n" for blocker in account.blockers]
    lines += [f"_Note: {_inline(note)}_\n" for note in account.notes]
    return "".join(lines) + ("\n" if lines else "")


def _row(change: ModelChange) -> str:
    action = change.action
    symbol = f"`{action.symbol}`" if action is not Action.NOOP else ""
    name = "reported" if action is Action.NOOP else action.value
    return f"| {symbol} | {_code(change.model_id)} | {name} | {_inline(change.reason)} |\n"


def _details(changes: list[ModelChange]) -> str:
    with_fields = [c for c in changes if c.fields and c.action in (Action.LOAD, Action.REPLACE)]
    if not with_fields:
        return ""
    lines: list[str] = []
    for change in with_fields:
        lines.append(f"{change.action.symbol} {safe_text(change.model_id)}")
        lines.extend(f"    {field_line(field)}" for field in change.fields)
    body = "\n".join(lines)
    fence = code_fence(body)
    noun = "model" if len(with_fields) == 1 else "models"
    return (
        f"<details><summary>Field changes of {len(with_fields)} {noun}</summary>\n\n"
        f"{fence}\n{body}\n{fence}\n\n</details>\n\n"
    )


def _truncated(head: str, sections: list[_Section], max_chars: int) -> str:
    """Keep whole chunks (openings, rows) in order while they fit; count the rows left out."""
    budget = max_chars - len(head) - _RESERVE
    parts: list[str] = []
    used = shown = 0
    total = sum(len(section.rows) for section in sections)
    for chunk, is_row in _chunks(sections):
        if used + len(chunk) > budget:
            break
        parts.append(chunk)
        used += len(chunk)
        shown += is_row
    note = (
        f"\n_… {total - shown} more changes omitted, and the field changes, to keep this "
        "comment under GitHub's size limit; run `reconciler plan` for the full plan._\n"
    )
    return (head + "".join(parts) + note)[:max_chars]


def _chunks(sections: list[_Section]) -> list[tuple[str, bool]]:
    chunks: list[tuple[str, bool]] = []
    for section in sections:
        chunks.append((section.opening, False))
        chunks.extend((row, True) for row in section.rows)
        if section.rows:
            chunks.append(("\n", False))
    return chunks


_inline = markdown_text
_code = markdown_code
