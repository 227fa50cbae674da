"""Which ledger entry follows from a change and what became of it. Pure: no I/O, no clock.

Every ledger write of a run goes through :func:`next_entry`: the write-ahead intent before a
request is sent, the request's acceptance, its settled outcome (ready or failed), an
abandoned request (refused for certain, so it never reached the server), a delete, and the
adoption of a ready model the ledger did not know. ``apply`` calls it as things happen; the
property tests of the planner call it to simulate an apply, so the two cannot disagree.

The rules that matter:

- An intent never overwrites the confirmed spec: if the request never left, the next run must
  still see the spec change it was meant to apply (a replace is never silently adopted).
- A reload brings back the spec that was loaded, which may not be the declared one: it keeps
  the entry's spec.
- ``failures`` counts consecutive failed loads of one spec; the planner stops retrying at
  :data:`reconciler.core.plan.MAX_LOAD_ATTEMPTS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from reconciler.core.ledger_entries import Intent, IntentAction, LedgerEntry


class LedgerEvent(StrEnum):
    """Something that happened to one model's request during a run."""

    INTENT = "intent"  # about to send: the request may reach the server from now on
    ACCEPTED = "accepted"  # the server accepted it (or a listing proved it landed)
    READY = "ready"  # the model is ready with it
    FAILED = "failed"  # the load ended failed (or was never confirmed by the deadline)
    ABANDONED = "abandoned"  # refused for certain: it never took effect
    DELETED = "deleted"  # the model was deleted
    ADOPTED = "adopted"  # a ready, declared model this tool did not load, now managed


def next_entry(
    before: LedgerEntry | None,
    event: LedgerEvent,
    *,
    action: str,
    spec: Mapping[str, str],
    spec_hash: str,
    at: str,
) -> LedgerEntry | None:
    """The entry after ``event`` for a change of ``action`` with ``spec`` (None: no entry).

    ``action`` is the plan's action (``load``, ``reload``, ``replace``, ``delete``, ``wait``,
    ``noop``); ``at`` the event's time as an ISO 8601 UTC timestamp.
    """
    keeps_spec = action == "reload" and before is not None and before.confirmed
    if event is LedgerEvent.DELETED:
        return None
    if event is LedgerEvent.INTENT:
        return _with_intent(before, action, spec_hash, at)
    if event is LedgerEvent.ABANDONED:
        if before is None or not before.confirmed:
            return None
        return before.model_copy(update={"pending": None})
    if event is LedgerEvent.ADOPTED:
        return _entry(spec, spec_hash, at, "adopted", 0)
    if keeps_spec and before is not None:
        outcome = {"accepted": "applied", "ready": "ready", "failed": "failed"}[event.value]
        failures = before.failures + 1 if event is LedgerEvent.FAILED else before.failures
        failures = 0 if event is LedgerEvent.READY else failures
        return before.model_copy(
            update={"applied_at": at, "outcome": outcome, "failures": failures, "pending": None}
        )
    same = before is not None and before.confirmed and before.spec_hash == spec_hash
    previous_failures = before.failures if same and before is not None else 0
    if event is LedgerEvent.ACCEPTED:
        return _entry(spec, spec_hash, at, "applied", previous_failures)
    if event is LedgerEvent.READY:
        return _entry(spec, spec_hash, at, "ready", 0)
    return _entry(spec, spec_hash, at, "failed", previous_failures + 1)


_INTENT_ACTIONS: Mapping[str, IntentAction] = {
    "load": "load",
    "reload": "reload",
    "replace": "replace",
    "delete": "delete",
}


def _with_intent(
    before: LedgerEntry | None, action: str, spec_hash: str, at: str
) -> LedgerEntry | None:
    intent_action = _INTENT_ACTIONS.get(action)
    if intent_action is None:
        return before  # waits and no-ops send nothing
    if action == "reload" and before is not None and before.confirmed:
        spec_hash = before.spec_hash
    intent = Intent(action=intent_action, spec_hash=spec_hash, at=at)
    if before is None:
        return LedgerEntry(spec_hash="", applied_at=at, outcome="pending", pending=intent)
    return before.model_copy(update={"pending": intent})


def _entry(
    spec: Mapping[str, str], spec_hash: str, at: str, outcome: str, failures: int
) -> LedgerEntry:
    return LedgerEntry.model_validate(
        {
            "spec_hash": spec_hash,
            "spec": dict(spec),
            "applied_at": at,
            "outcome": outcome,
            "failures": failures,
        }
    )
