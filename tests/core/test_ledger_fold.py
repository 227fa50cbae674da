"""The one pure ledger fold: which entry follows from a change and what became of it."""

from __future__ import annotations

import pytest

from reconciler.core.ledger_entries import LedgerEntry
from reconciler.core.ledger_fold import LedgerEvent, next_entry

OLD = {"url": "org/v1"}
NEW = {"url": "org/v2"}
AT = "2026-11-25T10:00:00Z"
LATER = "2026-11-25T10:05:00Z"


def ready(spec: dict[str, str], failures: int = 0, outcome: str = "ready") -> LedgerEntry:
    return LedgerEntry.model_validate(
        {
            "spec_hash": f"h:{spec['url']}",
            "spec": spec,
            "applied_at": AT,
            "outcome": outcome,
            "failures": failures,
        }
    )


def fold(
    before: LedgerEntry | None, event: LedgerEvent, action: str, spec: dict[str, str]
) -> LedgerEntry | None:
    return next_entry(
        before, event, action=action, spec=spec, spec_hash=f"h:{spec['url']}", at=LATER
    )


def test_an_intent_keeps_the_confirmed_spec_and_notes_what_may_be_sent() -> None:
    after = fold(ready(OLD), LedgerEvent.INTENT, "replace", NEW)
    assert after is not None
    assert (after.spec, after.spec_hash, after.outcome) == (OLD, "h:org/v1", "ready")
    assert after.pending is not None
    assert (after.pending.action, after.pending.spec_hash, after.pending.at) == (
        "replace",
        "h:org/v2",
        LATER,
    )


def test_a_first_intent_is_a_placeholder_that_confirms_nothing() -> None:
    after = fold(None, LedgerEvent.INTENT, "load", NEW)
    assert after is not None and not after.confirmed and after.spec == {}
    assert fold(after, LedgerEvent.ABANDONED, "load", NEW) is None  # never sent: no trace


def test_acceptance_records_the_new_spec_and_clears_the_intent() -> None:
    pending = fold(ready(OLD), LedgerEvent.INTENT, "replace", NEW)
    after = fold(pending, LedgerEvent.ACCEPTED, "replace", NEW)
    assert after is not None
    assert (after.spec, after.outcome, after.pending) == (NEW, "applied", None)


def test_an_abandoned_request_restores_the_entry_as_it_was() -> None:
    pending = fold(ready(OLD), LedgerEvent.INTENT, "replace", NEW)
    assert fold(pending, LedgerEvent.ABANDONED, "replace", NEW) == ready(OLD)


def test_a_reload_keeps_the_loaded_spec_even_if_another_is_declared() -> None:
    pending = fold(ready(OLD), LedgerEvent.INTENT, "reload", NEW)
    assert pending is not None and pending.pending is not None
    assert pending.pending.spec_hash == "h:org/v1"
    done = fold(pending, LedgerEvent.READY, "reload", NEW)
    assert done is not None and (done.spec, done.outcome, done.pending) == (OLD, "ready", None)


@pytest.mark.parametrize("action", ["load", "reload", "wait"])
def test_failures_count_consecutive_failed_loads_of_one_spec(action: str) -> None:
    once = fold(ready(OLD), LedgerEvent.FAILED, action, OLD)
    twice = fold(once, LedgerEvent.FAILED, action, OLD)
    assert twice is not None and twice.failures == 2 and twice.outcome == "failed"
    assert fold(twice, LedgerEvent.READY, action, OLD) == ready(OLD).model_copy(
        update={"applied_at": LATER}
    )
    if action != "reload":  # another spec starts the count again
        other = fold(twice, LedgerEvent.FAILED, action, NEW)
        assert other is not None and other.failures == 1


def test_acceptance_of_the_same_spec_keeps_the_failure_count() -> None:
    failed = ready(OLD, failures=2, outcome="failed")
    after = fold(failed, LedgerEvent.ACCEPTED, "load", OLD)
    assert after is not None and after.failures == 2


def test_delete_and_adoption() -> None:
    assert fold(ready(OLD), LedgerEvent.DELETED, "delete", {"url": ""}) is None
    adopted = fold(None, LedgerEvent.ADOPTED, "noop", NEW)
    assert adopted is not None and (adopted.outcome, adopted.spec) == ("adopted", NEW)


def test_waits_and_noops_record_no_intent() -> None:
    assert fold(ready(OLD), LedgerEvent.INTENT, "wait", OLD) == ready(OLD)
    assert fold(None, LedgerEvent.INTENT, "noop", OLD) is None
