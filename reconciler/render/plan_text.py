"""The plan as text, in the terraform manner: ``+ load``, ``~ replace``, ``↻ reload``, ``- delete``.

Per account a header, one line per change (``noop`` changes are left out; those worth a word,
such as unmanaged or adopted models, are listed under ``reported:``), the field differences of
loads and replaces, notes and blockers; then a summary line and, if a guard fired, ``Error:``
lines saying apply will refuse to run. Output is deterministic: accounts and changes keep the
plan's sorted order.

Model ids (some come from the API's listing), reasons, notes and field values pass through
:func:`~reconciler.render.safe_text.safe_text`: no control character or workflow command from
outside reaches the terminal or a CI log. This module only writes to the stream it is given. It
never chooses an exit code and never prints an API key (a plan holds none).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from reconciler.core.diff import FieldChange
from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan
from reconciler.render.safe_text import safe_text

#: Width of the action column: the longest action name and three spaces.
_ACTION_COLUMN = max(len(action.value) for action in Action) + 3
#: Actions whose field differences are shown under the change line.
_SHOWS_FIELDS = (Action.LOAD, Action.REPLACE)
_CHANGE_ACTIONS = (Action.LOAD, Action.RELOAD, Action.REPLACE, Action.DELETE, Action.WAIT)


def write_plan_text(plan: Plan, stream: TextIO) -> None:
    """Write the whole plan: every account, the summary line and the run's blockers."""
    for account in plan.accounts:
        for line in account_lines(account, ledger_available=plan.ledger_available):
            stream.write(line + "\n")
        stream.write("\n")
    stream.write(summary_line(plan) + "\n")
    blockers = blocker_messages(plan)
    if blockers:
        stream.write("\n")
    for blocker in blockers:
        stream.write(f"Error: apply will refuse to run: {blocker}\n")


def account_lines(account: AccountPlan, *, ledger_available: bool) -> list[str]:
    """The lines of one account: header, changes with their fields, reported models, notes."""
    listed = [change for change in account.changes if change.action is not Action.NOOP]
    reported = reported_changes(account, ledger_available=ledger_available)
    lines = [f"account {safe_text(account.account)} ({account.api})"]
    width = max((len(safe_text(change.model_id)) for change in listed), default=0)
    for change in listed:
        lines.append(change_line(change, width))
        if change.action in _SHOWS_FIELDS:
            lines.extend(f"      {field_line(field)}" for field in change.fields)
    if reported:
        lines.append("  reported:")
        lines.extend(_reported_lines(reported))
    if not listed and not reported:
        lines.append("  no changes")
    lines.extend(f"  note: {safe_text(note)}" for note in account.notes)
    lines.extend(f"  ! {safe_text(blocker)}" for blocker in account.blockers)
    return lines


def change_line(change: ModelChange, width: int) -> str:
    """``  + load      analog-diffusion   not on the account``."""
    action = change.action
    model_id = safe_text(change.model_id)
    text = f"  {action.symbol} {action.value:<{_ACTION_COLUMN}}{model_id:<{width}}"
    return f"{text}   {safe_text(change.reason)}".rstrip()


def field_line(field: FieldChange) -> str:
    """``url: "old" → "new"``, or ``+ url = "new"`` when added, ``- url = "old"`` when removed."""
    path = safe_text(field.path)
    if field.old is None:
        return f"+ {path} = {_quoted(field.new)}"
    if field.new is None:
        return f"- {path} = {_quoted(field.old)}"
    return f"{path}: {_quoted(field.old)} → {_quoted(field.new)}"


def reported_changes(account: AccountPlan, *, ledger_available: bool) -> list[ModelChange]:
    """``noop`` changes worth a word: undeclared models, and declared ones being adopted."""
    return [change for change in account.changes if _is_reported(change, ledger_available)]


def change_counts(plan: Plan) -> str:
    """``7 to load, 1 to reload, 0 to replace, 1 to delete, 2 to wait``."""
    counts = plan.counts()
    return ", ".join(f"{counts[action.value]} to {action.value}" for action in _CHANGE_ACTIONS)


def other_counts(plan: Plan) -> str:
    """``1 blocked, 3 unchanged``."""
    counts = plan.counts()
    return f"{counts[Action.BLOCKED.value]} blocked, {counts[Action.NOOP.value]} unchanged"


def summary_line(plan: Plan) -> str:
    """``Plan: … to load, … . N blocked, M unchanged.`` or ``No changes. …``, and which
    accounts could not be read (a plan without them is incomplete, never "no changes")."""
    if plan.unread:
        done = f"Plan: {change_counts(plan)}" if plan.has_changes() else "No changes found"
        unread = safe_text(", ".join(plan.unread))
        return f"{done}, but the plan is incomplete: could not read {unread}."
    if plan.has_changes():
        return f"Plan: {change_counts(plan)}. {other_counts(plan)}."
    if plan.counts()[Action.BLOCKED.value]:
        return f"No changes. {other_counts(plan)}."
    return "No changes. Every account matches its manifests."


def blocker_messages(plan: Plan) -> list[str]:
    """Every guard that stops the run: the run's own, then each account's, named; made safe."""
    messages = [safe_text(blocker) for blocker in plan.blockers]
    for account in plan.accounts:
        messages.extend(
            safe_text(f"account {account.account}: {blocker}") for blocker in account.blockers
        )
    return messages


def _is_reported(change: ModelChange, ledger_available: bool) -> bool:
    if change.action is not Action.NOOP:
        return False
    if not change.declared:
        return True
    # Declared, live and not yet in the ledger: apply adopts it with the declared spec.
    return ledger_available and not change.managed and change.condition is not Condition.MISSING


def _reported_lines(changes: Sequence[ModelChange]) -> list[str]:
    ids = [safe_text(change.model_id) for change in changes]
    width = max(len(model_id) for model_id in ids)
    return [
        f"    {model_id:<{width}}  {safe_text(change.reason)}".rstrip()
        for model_id, change in zip(ids, changes, strict=True)
    ]


def _quoted(value: str | None) -> str:
    """A JSON string; json escapes C0 controls, :func:`safe_text` the rest (DEL, C1, bidi)."""
    return safe_text(json.dumps(value, ensure_ascii=False))
