"""The planner and write-ahead intents: a request an interrupted run may have sent is
re-observed from the listing and never sent again while the listing cannot rule it out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.ledger_entries import Intent, LedgerEntry, LedgerState
from reconciler.core.live import Condition
from reconciler.core.plan import DEFAULT_LOAD_GRACE, Action, Timing, make_plan
from reconciler.manifest.models import spec_hash

from .test_plan import URL, account, entry, live, only, recorded

WHEN = "2026-11-25T10:00:00Z"
NOW = datetime(2026, 11, 25, 10, 1, tzinfo=UTC)  # one minute after the intent: within grace
LATER = NOW + timedelta(seconds=DEFAULT_LOAD_GRACE + 60)  # past the grace


def with_intent(before: LedgerEntry | None, action: str, spec: str) -> LedgerEntry:
    intent = Intent.model_validate({"action": action, "spec_hash": spec, "at": WHEN})
    if before is None:
        return LedgerEntry(spec_hash="", applied_at=WHEN, outcome="pending", pending=intent)
    return before.model_copy(update={"pending": intent})


def plan_one(
    api: str, condition: Condition, ledger_entry: LedgerEntry, now: datetime = NOW, url: str = URL
) -> tuple[Action, str]:
    acct = account(api, [entry(api, "m", url=url)])
    ledger = LedgerState().with_entry("acct", "m", ledger_entry)
    plan = make_plan([acct], {"acct": live(m=condition)}, ledger, timing=Timing(now=now))
    change = only(plan, "m")
    return change.action, change.reason


def declared_hash(api: str, url: str = URL) -> str:
    acct = account(api, [entry(api, "m", url=url)])
    return acct.desired()[0].spec_hash


# fmt: off
FIRST_LOAD = [
    # api, live condition, now, expected action, reason fragment
    ("community", Condition.MISSING, NOW, Action.LOAD, "not on the account"),
    ("community", Condition.LOADING, NOW, Action.WAIT, "interrupted run sent is running"),
    ("community", Condition.READY, NOW, Action.NOOP, "interrupted run sent has finished"),
    ("community", Condition.FAILED, NOW, Action.LOAD, "last load failed"),
    ("enterprise", Condition.MISSING, NOW, Action.WAIT, "may have sent is not listed yet"),
    ("enterprise", Condition.MISSING, LATER, Action.LOAD, "not on the account"),
    ("enterprise", Condition.READY, NOW, Action.NOOP, "interrupted run sent has finished"),
]
# fmt: on


@pytest.mark.parametrize(("api", "condition", "now", "want", "reason"), FIRST_LOAD)
def test_an_interrupted_first_load(
    api: str, condition: Condition, now: datetime, want: Action, reason: str
) -> None:
    """Only an intent, nothing confirmed: community listings show a landed load at once, so
    missing means it never arrived; an enterprise server is waited for until the grace."""
    placeholder = with_intent(None, "load", declared_hash(api))
    action, why = plan_one(api, condition, placeholder, now)
    assert (action, reason in why) == (want, True), why


@pytest.mark.parametrize("api", ["community", "enterprise"])
def test_an_interrupted_replace_of_a_ready_model_is_sent_again(api: str) -> None:
    """Ready says nothing about whether the replace landed (done, or never sent): resending
    is the only way not to miss the spec change; the old spec stays in the ledger."""
    acct = account(api, [entry(api, "m", url="org/v2")])
    old = recorded(acct, "m", url="org/v1")
    intent = with_intent(old, "replace", declared_hash(api, "org/v2"))
    action, why = plan_one(api, Condition.READY, intent, url="org/v2")
    assert action is Action.REPLACE and "interrupted run may have sent" in why


def test_an_interrupted_community_replace_that_is_loading_is_waited_for() -> None:
    acct = account("community", [entry("community", "m", url="org/v2")])
    intent = with_intent(
        recorded(acct, "m", url="org/v1"), "replace", declared_hash("community", "org/v2")
    )
    assert plan_one("community", Condition.LOADING, intent, url="org/v2")[0] is Action.WAIT


def test_an_intent_never_hides_a_spec_change() -> None:
    """A crash between the intent and the request: the confirmed spec is still the old one, so
    the change is still planned (never adopted)."""
    acct = account("community", [entry("community", "m", url="org/v2")])
    intent = with_intent(
        recorded(acct, "m", url="org/v1"), "replace", declared_hash("community", "org/v2")
    )
    assert intent.spec["url"] == "org/v1"
    assert plan_one("community", Condition.READY, intent, url="org/v2")[0] is Action.REPLACE


def test_a_superseded_intent_gives_way_to_the_new_declaration() -> None:
    """Declared v3 after an interrupted replace to v2: the usual rows decide (replace to v3)."""
    acct = account("community", [entry("community", "m", url="org/v3")])
    intent = with_intent(recorded(acct, "m", url="org/v1"), "replace", spec_hash({"url": "org/v2"}))
    action, why = plan_one("community", Condition.READY, intent, url="org/v3")
    assert action is Action.REPLACE and "spec changed" in why


def test_an_interrupted_community_reload_is_sent_again_when_still_evicted() -> None:
    acct = account("community", [entry("community", "m")])
    before = recorded(acct, "m")
    intent = with_intent(before, "reload", before.spec_hash)
    assert plan_one("community", Condition.EVICTED, intent)[0] is Action.RELOAD
    assert plan_one("community", Condition.LOADING, intent)[0] is Action.WAIT


def test_an_enterprise_load_sent_and_never_listed_is_loaded_again_after_the_grace() -> None:
    acct = account("enterprise", [entry("enterprise", "m")])
    applied = recorded(acct, "m").model_copy(update={"outcome": "applied", "applied_at": WHEN})
    assert plan_one("enterprise", Condition.MISSING, applied, NOW)[0] is Action.WAIT
    action, why = plan_one("enterprise", Condition.MISSING, applied, LATER)
    assert action is Action.LOAD and "never appeared within the load grace" in why
    # without a clock the planner never takes a load for lost
    ledger = LedgerState().with_entry("acct", "m", applied)
    plan = make_plan([acct], {"acct": live()}, ledger)
    assert only(plan, "m").action is Action.WAIT


def test_repeated_silent_enterprise_failures_stop_being_retried() -> None:
    acct = account("enterprise", [entry("enterprise", "m")])
    failed = recorded(acct, "m", failures=3)
    action, why = plan_one("enterprise", Condition.MISSING, failed, LATER)
    assert action is Action.BLOCKED and "failed 3 times" in why
