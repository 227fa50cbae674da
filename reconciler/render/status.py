"""``reconciler status``: the rows of :mod:`reconciler.core.status`, as text or JSON.

The rows are made in the core (the same walk over an account's models as the planner's); this
module only writes them to a given stream. Nothing here plans, calls the API or chooses an exit
code. Every cell of the text table passes through
:func:`~reconciler.render.safe_text.safe_text`: model ids come from the API, ledger entries
from a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from reconciler.core.live import Condition
from reconciler.core.status import AccountStatus, ModelStatus
from reconciler.render.safe_text import safe_json, safe_text

STATUS_FORMAT_VERSION = 1
_COLUMNS = ("MODEL", "CONDITION", "DECLARED", "MANAGED", "LAST APPLY")


def write_status_text(rows: Sequence[AccountStatus], stream: TextIO) -> None:
    """One aligned table per account, separated by blank lines."""
    for index, account in enumerate(rows):
        if index:
            stream.write("\n")
        stream.write(f"account {safe_text(account.account)} ({safe_text(account.api)})\n")
        for line in _table(account.models):
            stream.write(f"  {line}\n")


def write_status_json(rows: Sequence[AccountStatus], stream: TextIO) -> None:
    """``{"format_version": 1, "accounts": [{"account", "api", "models": [...]}]}``."""
    document = {
        "format_version": STATUS_FORMAT_VERSION,
        "accounts": [account.model_dump(mode="json") for account in rows],
    }
    stream.write(safe_json(document))


def condition_text(model: ModelStatus) -> str:
    """``ready``, or ``unmanaged (ready)`` for an undeclared model."""
    if model.condition is Condition.UNMANAGED:
        return f"unmanaged ({model.live_condition.value})"
    return model.condition.value


def last_apply_text(model: ModelStatus) -> str:
    """``2026-11-25T10:00:00Z ready``, or ``-`` when never applied."""
    if model.last_applied_at is None:
        return "-"
    return f"{model.last_applied_at} {model.last_outcome}"


def _table(models: Sequence[ModelStatus]) -> list[str]:
    cells = [_COLUMNS] + [
        (
            safe_text(m.model_id),
            safe_text(condition_text(m)),
            _yes_no(m.declared),
            _yes_no(m.managed),
            safe_text(last_apply_text(m)),
        )
        for m in models
    ]
    widths = [max(len(row[column]) for row in cells) for column in range(len(_COLUMNS))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"
