"""``status`` rows from manifests, live state and ledger, and their text and JSON."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from reconciler.core.ledger_entries import LedgerEntry, LedgerState
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.core.status import AccountStatus, status_rows
from reconciler.manifest.models import ACCOUNT_ADAPTER, LoadedAccount
from reconciler.render.status import write_status_json, write_status_text


def account(name: str, **spec: Any) -> LoadedAccount:
    document = {"version": 1, "account": name, "api": "community", "key_env": "KEY", **spec}
    return LoadedAccount(spec=ACCOUNT_ADAPTER.validate_python(document), file="m.yaml", line=1)


MODEL = {"url": "a/b", "model_format": "diffusers", "model_category": "stable_diffusion"}


@pytest.fixture
def rows() -> tuple[AccountStatus, ...]:
    studio = account(
        "studio-prod",
        models=[
            {"model_id": "analog", **MODEL},
            {"model_id": "missing-one", **MODEL},
            {"model_id": "old", "ensure": "absent"},
        ],
        ignore=["tmp-*"],
    )
    live = LiveState(
        "studio-prod",
        {
            "analog": LiveModel("analog", Condition.READY),
            "stray": LiveModel("stray", Condition.EVICTED),
            "tmp-scratch": LiveModel("tmp-scratch", Condition.READY),
        },
    )
    entry = LedgerEntry(spec_hash="h", applied_at="2026-11-25T10:00:00Z", outcome="ready")
    ledger = LedgerState().with_entry("studio-prod", "analog", entry)
    unplanned = account("zz-no-live-state")
    return status_rows([unplanned, studio], {"studio-prod": live}, ledger)


def test_rows_cover_declared_and_unmanaged_models(rows: tuple[AccountStatus, ...]) -> None:
    assert [a.account for a in rows] == ["studio-prod"]
    models = {m.model_id: m for m in rows[0].models}
    assert list(models) == ["analog", "missing-one", "old", "stray"]  # tmp-* ignored
    assert models["analog"].managed and models["analog"].last_outcome == "ready"
    assert models["missing-one"].condition is Condition.MISSING
    assert models["stray"].condition is Condition.UNMANAGED
    assert models["stray"].live_condition is Condition.EVICTED
    assert not models["stray"].declared


def test_text_table(rows: tuple[AccountStatus, ...]) -> None:
    stream = io.StringIO()
    write_status_text(rows, stream)
    assert stream.getvalue().splitlines() == [
        "account studio-prod (community)",
        "  MODEL        CONDITION            DECLARED  MANAGED  LAST APPLY",
        "  analog       ready                yes       yes      2026-11-25T10:00:00Z ready",
        "  missing-one  missing              yes       no       -",
        "  old          missing              yes       no       -",
        "  stray        unmanaged (evicted)  no        no       -",
    ]


def test_json_document(rows: tuple[AccountStatus, ...]) -> None:
    stream = io.StringIO()
    write_status_json(rows, stream)
    document = json.loads(stream.getvalue())
    assert document["format_version"] == 1
    stray = document["accounts"][0]["models"][3]
    assert stray == {
        "model_id": "stray",
        "condition": "unmanaged",
        "live_condition": "evicted",
        "declared": False,
        "managed": False,
        "last_applied_at": None,
        "last_outcome": None,
    }


def test_without_a_ledger_nothing_is_managed() -> None:
    studio = account("s", models=[{"model_id": "m", **MODEL}])
    live = LiveState("s", {"m": LiveModel("m", Condition.LOADING)})
    (row,) = status_rows([studio], {"s": live}, None)
    assert [(m.model_id, m.condition, m.managed) for m in row.models] == [
        ("m", Condition.LOADING, False)
    ]
