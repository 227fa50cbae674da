"""The models of one account, classified once: declared, undeclared and ignored. Pure.

``plan`` and ``status`` look at the same models of an account: every declared one, and every
live one no manifest declares, except those the account's ``ignore`` globs match (never
touched, never shown). Both join the declaration, the live state and the ledger entry of each.
This module is that one walk, so the two can never disagree about which models there are or
which are declared, managed or ignored; what each makes of a model is its own business
(:mod:`reconciler.core.plan` decides an action, :mod:`reconciler.core.status` a row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.ledger_entries import LedgerEntry, LedgerState
from reconciler.core.live import LiveState
from reconciler.manifest.models import DesiredModel, LoadedAccount

_NO_ENTRIES: Mapping[str, LedgerEntry] = {}


@dataclass(frozen=True, slots=True)
class AccountModel:
    """One model of an account: its declaration (if any), its ledger entry (if any).

    ``ignored`` is only ever true for a declared model: an undeclared one that an ``ignore``
    glob matches is not an :class:`AccountModel` at all (see :attr:`Inventory.ignored`), while
    a declared one is kept, so the contradiction is reported rather than dropped silently.
    """

    model_id: str
    declaration: DesiredModel | None
    entry: LedgerEntry | None
    ignored: bool = False

    @property
    def declared(self) -> bool:
        """Whether a manifest declares the model."""
        return self.declaration is not None

    @property
    def managed(self) -> bool:
        """Whether the ledger has an entry for the model (this tool loaded or adopted it)."""
        return self.entry is not None


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every model of one account that plan and status consider, sorted by model id."""

    account: LoadedAccount
    live: LiveState
    has_ledger: bool
    models: tuple[AccountModel, ...]
    ignored: tuple[str, ...] = ()  # undeclared live models an ignore glob leaves out, sorted


def classify_account(
    account: LoadedAccount, live: LiveState, ledger: LedgerState | None
) -> Inventory:
    """Join the account's declarations, its live state and its ledger entries, model by model.

    ``ledger`` None means no ledger is available: no model is managed.
    """
    entries = ledger.entries(account.name) if ledger is not None else _NO_ENTRIES
    desired = {model.model_id: model for model in account.desired()}
    models = [
        AccountModel(model_id, declaration, entries.get(model_id), account.ignores(model_id))
        for model_id, declaration in desired.items()
    ]
    ignored: list[str] = []
    for model_id in live.models:
        if model_id in desired:
            continue
        if account.ignores(model_id):
            ignored.append(model_id)
        else:
            models.append(AccountModel(model_id, None, entries.get(model_id)))
    models.sort(key=_model_id)
    ignored.sort()
    return Inventory(account, live, ledger is not None, tuple(models), tuple(ignored))


def _model_id(model: AccountModel) -> str:
    return model.model_id
