"""What an apply run did, as pure data: per account and model, the outcome and why it failed.

``apply`` fills it, renderers print it, the CLI derives the exit code from :meth:`ok`. The
``failure_reason`` values are the closed set of design.md §3.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from reconciler.core.live import Condition
from reconciler.core.plan import Action
from reconciler.errors import FailureReason

__all__ = ["AccountReport", "ApplyReport", "FailureReason", "ItemReport", "Outcome"]

REPORT_FORMAT_VERSION = 1


class Outcome(StrEnum):
    """How one planned change ended."""

    DONE = "done"  # the model is ready (loads, reloads, replaces, waits) or gone (deletes)
    FAILED = "failed"  # the API refused the request or the load ended model_failed
    TIMED_OUT = "timed-out"  # still not ready when the deadline passed
    SENT = "sent"  # requested, not waited for (--no-wait)
    SKIPPED = "skipped"  # not attempted: the account failed before reaching it
    BLOCKED = "blocked"  # the plan refused it (protect, community delete, retry bound…)
    UNCHANGED = "unchanged"  # nothing to do


class ItemReport(BaseModel):
    """The outcome of one model's change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str
    action: Action
    outcome: Outcome
    condition: Condition = Field(description="The live condition at the end of the run.")
    failure_reason: FailureReason | None = None
    message: str = ""


class AccountReport(BaseModel):
    """The outcome of one account: converged or not, and each item."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    api: str
    converged: bool
    failure_reason: FailureReason | None = None
    message: str = ""
    items: tuple[ItemReport, ...] = ()
    remaining: tuple[str, ...] = Field(
        default=(), description="Changes a fresh plan still finds after the run."
    )
    elapsed_seconds: float = 0.0


class ApplyReport(BaseModel):
    """The whole run: every account's report; ``ok`` only if every account converged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = REPORT_FORMAT_VERSION
    accounts: tuple[AccountReport, ...] = ()
    waited: bool = True
    refused: str = Field(default="", description="Why the run was refused before acting.")
    refused_reason: FailureReason | None = None
    notes: tuple[str, ...] = Field(
        default=(), description="Things the user should know (a claim taken over…)."
    )

    def ok(self) -> bool:
        """Whether every account converged (the run exits 0)."""
        return not self.refused and all(account.converged for account in self.accounts)

    def failure_reason(self) -> FailureReason | None:
        """The run's failure reason: its refusal's, else the first account's."""
        if self.refused_reason is not None:
            return self.refused_reason
        return next((a.failure_reason for a in self.accounts if a.failure_reason), None)
