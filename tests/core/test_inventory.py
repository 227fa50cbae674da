"""The one walk over an account's models that plan and status share."""

from __future__ import annotations

from typing import Any

from reconciler.core.inventory import classify_account
from reconciler.core.ledger_entries import LedgerEntry, LedgerState
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.core.plan import plan_account
from reconciler.core.status import status_rows
from reconciler.manifest.models import ACCOUNT_ADAPTER, LoadedAccount

MODEL = {"url": "a/b", "model_format": "diffusers", "model_category": "stable_diffusion"}


def account(**spec: Any) -> LoadedAccount:
    document = {"version": 1, "account": "acct", "api": "community", "key_env": "KEY", **spec}
    return LoadedAccount(spec=ACCOUNT_ADAPTER.validate_python(document), file="m.yaml", line=1)


def live(*ids: str) -> LiveState:
    return LiveState("acct", {i: LiveModel(i, Condition.READY) for i in ids})


ACCOUNT = account(
    models=[
        {"model_id": "zeta", **MODEL},
        {"model_id": "alpha", **MODEL},
        {"model_id": "tmp-declared", **MODEL},
        {"model_id": "gone", "ensure": "absent"},
    ],
    ignore=["tmp-*"],
)
LIVE = live("alpha", "stray", "tmp-scratch", "tmp-declared", "other")
ENTRY = LedgerEntry(spec_hash="h", applied_at="2026-01-01T00:00:00Z", outcome="applied")
LEDGER = LedgerState().with_entry("acct", "stray", ENTRY).with_entry("acct", "alpha", ENTRY)


def test_declared_and_undeclared_sorted_ignored_left_out() -> None:
    inventory = classify_account(ACCOUNT, LIVE, LEDGER)
    assert [m.model_id for m in inventory.models] == [
        "alpha",
        "gone",
        "other",
        "stray",
        "tmp-declared",
        "zeta",
    ]
    assert inventory.ignored == ("tmp-scratch",)
    by_id = {m.model_id: m for m in inventory.models}
    assert [i for i, m in by_id.items() if m.declared] == ["alpha", "gone", "tmp-declared", "zeta"]
    assert [i for i, m in by_id.items() if m.managed] == ["alpha", "stray"]
    assert by_id["stray"].entry == ENTRY and by_id["stray"].declaration is None
    # A declared model an ignore glob matches stays, flagged, so plan can report it.
    assert [i for i, m in by_id.items() if m.ignored] == ["tmp-declared"]
    assert inventory.has_ledger


def test_without_a_ledger_nothing_is_managed() -> None:
    inventory = classify_account(ACCOUNT, LIVE, None)
    assert not inventory.has_ledger
    assert not any(m.managed for m in inventory.models)


def test_plan_and_status_see_the_same_models() -> None:
    planned = plan_account(ACCOUNT, LIVE, LEDGER)
    (row,) = status_rows([ACCOUNT], {"acct": LIVE}, LEDGER)
    assert [(c.model_id, c.declared, c.managed) for c in planned.changes] == [
        (m.model_id, m.declared, m.managed) for m in row.models
    ]
    ignored = {c.model_id: c.reason for c in planned.changes if "ignore" in c.reason}
    assert list(ignored) == ["tmp-declared"]
