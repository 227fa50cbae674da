"""What ``reconciler status`` shows of each account: one row per model. Pure: no I/O.

The rows are the account's :mod:`~reconciler.core.inventory` (the same models the planner
sees: declared ones, and undeclared live ones not matched by ``ignore``) with each model's live
condition and last apply. Rendering them is :mod:`reconciler.render.status`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from reconciler.core.inventory import AccountModel, classify_account
from reconciler.core.ledger_entries import LedgerState
from reconciler.core.live import Condition, LiveState
from reconciler.manifest.models import LoadedAccount


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


def _account_status(
    account: LoadedAccount, live: LiveState, ledger: LedgerState | None
) -> AccountStatus:
    inventory = classify_account(account, live, ledger)
    models = tuple(_model_status(model, live) for model in inventory.models)
    return AccountStatus(account=account.name, api=account.api, models=models)


def _model_status(model: AccountModel, live: LiveState) -> ModelStatus:
    entry = model.entry
    return ModelStatus(
        model_id=model.model_id,
        condition=live.condition(model.model_id, declared=model.declared),
        live_condition=live.condition(model.model_id),
        declared=model.declared,
        managed=model.managed,
        last_applied_at=entry.applied_at if entry else None,
        last_outcome=entry.outcome if entry else None,
    )
