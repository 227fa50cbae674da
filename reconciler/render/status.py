"""``reconciler status``: per account, every declared and unmanaged model, as text or JSON.

:func:`status_rows` is a pure helper that joins the manifests, the live state and the ledger
into rows (no I/O); the writers print them to a given stream. Undeclared models matching the
account's ``ignore`` globs are left out, as the planner leaves them out. Nothing here plans,
calls the API or chooses an exit code. Every cell of the text table passes through
:func:`~reconciler.render.safe_text.safe_text`: model ids come from the API, ledger entries
from a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field

from reconciler.core.live import Condition, LiveState
from reconciler.core.records import LedgerEntry, LedgerState
from reconciler.manifest.models import LoadedAccount
from reconciler.render.safe_text import safe_json, safe_text

STATUS_FORMAT_VERSION = 1
_COLUMNS = ("MODEL", "CONDITION", "DECLARED", "MANAGED", "LAST APPLY")


class ModelStatus(BaseModel):
    """One model of one account as ``status`` shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str
    condition: Condition = Field(description="Live condition; `unmanaged` when undeclared.")
    live_condition: Condition = Field(description="The live model's own condition.")
    declared: bool
    managed: bool = Field(description="Whether the ledger has an entry for it.")
    last_applied_at: str | None = None
    last_outcome: str | None = None

    def condition_text(self) -> str:
        """``ready``, or ``unmanaged (ready)`` for an undeclared model."""
        if self.condition is Condition.UNMANAGED:
            return f"unmanaged ({self.live_condition.value})"
        return self.condition.value

    def last_apply_text(self) -> str:
        """``2026-11-25T10:00:00Z ready``, or ``-`` when never applied."""
        if self.last_applied_at is None:
            return "-"
        return f"{self.last_applied_at} {self.last_outcome}"


class AccountStatus(BaseModel):
    """Every model ``status`` shows for one account, sorted by model id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    api: str
    models: tuple[ModelStatus, ...] = ()


def status_rows(
    accounts: Sequence[LoadedAccount],
    live: Mapping[str, LiveState],
    ledger: LedgerState | None,
) -> tuple[AccountStatus, ...]:
    """A table per account whose live state is known, sorted by account name."""
    return tuple(
        _account_status(account, live[account.name], ledger)
        for account in sorted(accounts, key=lambda a: a.name)
        if account.name in live
    )


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


def _account_status(
    account: LoadedAccount, live: LiveState, ledger: LedgerState | None
) -> AccountStatus:
    entries: Mapping[str, LedgerEntry] = ledger.entries(account.name) if ledger else {}
    declared = {model.model_id for model in account.desired()}
    undeclared = {
        model_id
        for model_id in live.models
        if model_id not in declared and not account.ignores(model_id)
    }
    models = [
        _model_status(model_id, model_id in declared, live, entries.get(model_id))
        for model_id in sorted(declared | undeclared)
    ]
    return AccountStatus(account=account.name, api=account.api, models=tuple(models))


def _model_status(
    model_id: str, declared: bool, live: LiveState, entry: LedgerEntry | None
) -> ModelStatus:
    return ModelStatus(
        model_id=model_id,
        condition=live.condition(model_id, declared=declared),
        live_condition=live.condition(model_id),
        declared=declared,
        managed=entry is not None,
        last_applied_at=entry.applied_at if entry else None,
        last_outcome=entry.outcome if entry else None,
    )


def _table(models: Sequence[ModelStatus]) -> list[str]:
    cells = [_COLUMNS] + [
        (
            safe_text(m.model_id),
            safe_text(m.condition_text()),
            _yes_no(m.declared),
            _yes_no(m.managed),
            safe_text(m.last_apply_text()),
        )
        for m in models
    ]
    widths = [max(len(row[column]) for row in cells) for column in range(len(_COLUMNS))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"
