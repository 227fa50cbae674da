"""What the ledger remembers, as pure data: per account and model, the spec last applied.

The list endpoints never show a model's url or revision, so spec changes are found against this
record of what the reconciler itself last applied (design.md §3). It also says which models
this tool manages. Reading and writing it is :mod:`reconciler.ledger`'s job; this module only
defines the shape and the pure updates, so the planner can use it without I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["applied", "ready", "failed", "adopted", "deleted"]

LEDGER_FORMAT_VERSION = 1


class LedgerEntry(BaseModel):
    """The last thing this tool did to one model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec_hash: str = Field(description="Hash of the load spec last sent (or adopted).")
    spec: dict[str, str] = Field(default_factory=dict, description="That spec, without key.")
    applied_at: str = Field(description="When, as an ISO 8601 UTC timestamp.")
    outcome: Outcome = Field(description="What came of it.")
    failures: int = Field(default=0, ge=0, description="Consecutive failed loads of this spec.")


class LedgerState(BaseModel):
    """Every account's entries; the whole content of a ledger store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = LEDGER_FORMAT_VERSION
    accounts: dict[str, dict[str, LedgerEntry]] = Field(default_factory=dict)

    def entries(self, account: str) -> Mapping[str, LedgerEntry]:
        """The entries of one account (empty when the tool never touched it)."""
        return self.accounts.get(account, {})

    def with_entry(self, account: str, model_id: str, entry: LedgerEntry | None) -> LedgerState:
        """A copy with one entry set, or removed when ``entry`` is None."""
        models = dict(self.accounts.get(account, {}))
        if entry is None:
            models.pop(model_id, None)
        else:
            models[model_id] = entry
        accounts = {**self.accounts, account: models}
        if not models:
            accounts.pop(account)
        return LedgerState(format_version=self.format_version, accounts=accounts)
