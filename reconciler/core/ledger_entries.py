"""What the ledger remembers, as pure data: per account and model, the spec last applied.

The list endpoints never show a model's url or revision, so spec changes are found against this
record of what the reconciler itself last applied (design.md §3). It also says which models
this tool manages, and which requests it *may* have sent (write-ahead intents: see
:class:`Intent`). Reading and writing it is :mod:`reconciler.ledger`'s job; which entry follows
from a change and its outcome is :func:`reconciler.core.ledger_fold.next_entry`'s; this module
only defines the shape, so the planner can use it without I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

#: ``pending`` marks an entry that holds only an intent: nothing was ever confirmed for it.
RecordedOutcome = Literal["applied", "ready", "failed", "adopted", "deleted", "pending"]

#: The requests an intent can stand for.
IntentAction = Literal["load", "reload", "replace", "delete"]

LEDGER_FORMAT_VERSION = 1

#: How the ledger writes an instant: ISO 8601 in UTC, to the second.
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def stamp(when: datetime) -> str:
    """``when`` (an aware datetime) as the ledger writes instants."""
    return when.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """An instant the ledger wrote, as an aware UTC datetime.

    Raises:
        ValueError: ``text`` is not a stamp of :data:`STAMP_FORMAT`.
    """
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


class Intent(BaseModel):
    """A request this tool was about to send, recorded before it was sent (write-ahead).

    Its answer has not been seen, so it *may* have reached the server. The next run treats the
    model as possibly in flight until a listing rules the request in or out: an intent is never
    a reason to send the same request again while the listing cannot tell.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: IntentAction = Field(description="The request that may have been sent.")
    spec_hash: str = Field(description="Hash of the spec that request carries.")
    at: str = Field(description="When it may have been sent, as an ISO 8601 UTC timestamp.")


class LedgerEntry(BaseModel):
    """The last thing this tool did to one model, and what it may be doing now."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec_hash: str = Field(description="Hash of the load spec last sent (or adopted).")
    spec: dict[str, str] = Field(default_factory=dict, description="That spec, without key.")
    applied_at: str = Field(description="When, as an ISO 8601 UTC timestamp.")
    outcome: RecordedOutcome = Field(description="What came of it.")
    failures: int = Field(default=0, ge=0, description="Consecutive failed loads of this spec.")
    pending: Intent | None = Field(
        default=None, description="A request that may have been sent and is not confirmed."
    )

    @field_serializer("spec")
    def _sorted_spec(self, spec: dict[str, str]) -> dict[str, str]:
        """Keys in order wherever an entry is written (files, journal, branch): small diffs."""
        return dict(sorted(spec.items()))

    @property
    def confirmed(self) -> bool:
        """Whether the entry records a spec the server is known to have received or held."""
        return self.outcome != "pending"


class LedgerState(BaseModel):
    """Every account's entries; the whole content of a ledger store, as the planner reads it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = LEDGER_FORMAT_VERSION
    accounts: dict[str, dict[str, LedgerEntry]] = Field(default_factory=dict)

    def entries(self, account: str) -> Mapping[str, LedgerEntry]:
        """The entries of one account (empty when the tool never touched it)."""
        return self.accounts.get(account, {})

    def with_entry(self, account: str, model_id: str, entry: LedgerEntry | None) -> LedgerState:
        """A copy with one entry set, or removed when ``entry`` is None.

        Costs one copy of that account's entries, never a validation of the whole ledger.
        """
        models = dict(self.accounts.get(account, {}))
        if entry is None:
            models.pop(model_id, None)
        else:
            models[model_id] = entry
        accounts = {**self.accounts, account: models}
        if not models:
            accounts.pop(account)
        return LedgerState.model_construct(format_version=self.format_version, accounts=accounts)
