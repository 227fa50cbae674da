"""LedgerState and LedgerEntry: the ledger's pure data and its copy-on-write update."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.core.ledger_entries import LEDGER_FORMAT_VERSION, LedgerEntry, LedgerState

WHEN = "2024-01-01T00:00:00Z"


def entry(url: str = "org/a", *, outcome: str = "ready", failures: int = 0) -> LedgerEntry:
    return LedgerEntry.model_validate(
        {
            "spec_hash": f"sha256:{url}",
            "spec": {"url": url},
            "applied_at": WHEN,
            "outcome": outcome,
            "failures": failures,
        }
    )


def test_empty_ledger_has_no_entries() -> None:
    ledger = LedgerState()
    assert ledger.format_version == LEDGER_FORMAT_VERSION
    assert ledger.entries("anything") == {}


def test_with_entry_adds_without_touching_the_original() -> None:
    empty = LedgerState()
    one = empty.with_entry("acct", "m", entry())
    assert empty.accounts == {}
    assert one.entries("acct") == {"m": entry()}
    two = one.with_entry("acct", "n", entry("org/b"))
    assert one.entries("acct") == {"m": entry()}
    assert two.entries("acct") == {"m": entry(), "n": entry("org/b")}


def test_with_entry_replaces_an_entry() -> None:
    ledger = LedgerState().with_entry("acct", "m", entry())
    updated = ledger.with_entry("acct", "m", entry("org/b", outcome="failed", failures=1))
    assert updated.entries("acct")["m"].failures == 1
    assert ledger.entries("acct")["m"] == entry()


def test_with_entry_keeps_accounts_apart() -> None:
    ledger = LedgerState().with_entry("a", "m", entry()).with_entry("b", "m", entry("org/b"))
    assert ledger.entries("a") == {"m": entry()}
    assert ledger.entries("b") == {"m": entry("org/b")}
    assert ledger.with_entry("a", "m", None).entries("b") == {"m": entry("org/b")}


def test_with_entry_none_removes_and_drops_an_emptied_account() -> None:
    ledger = LedgerState().with_entry("acct", "m", entry()).with_entry("acct", "n", entry())
    one_left = ledger.with_entry("acct", "m", None)
    assert one_left.entries("acct") == {"n": entry()}
    none_left = one_left.with_entry("acct", "n", None)
    assert none_left.accounts == {}
    assert none_left == LedgerState()
    assert ledger.entries("acct").keys() == {"m", "n"}


@pytest.mark.parametrize(
    "ledger",
    [LedgerState(), LedgerState().with_entry("acct", "m", entry())],
    ids=["empty", "one-entry"],
)
def test_removing_an_unknown_entry_changes_nothing(ledger: LedgerState) -> None:
    assert ledger.with_entry("acct", "other", None) == ledger
    assert ledger.with_entry("nobody", "m", None) == ledger


def test_with_entry_keeps_the_format_version() -> None:
    ledger = LedgerState(format_version=7)
    assert ledger.with_entry("acct", "m", entry()).format_version == 7


def test_ledger_json_round_trip() -> None:
    ledger = (
        LedgerState()
        .with_entry("a", "m", entry())
        .with_entry("b", "n", entry("org/b", outcome="failed", failures=2))
    )
    assert LedgerState.model_validate_json(ledger.model_dump_json()) == ledger


@pytest.mark.parametrize(
    "change",
    [
        {"failures": -1},
        {"outcome": "exploded"},
        {"surprise": 1},
        {"spec": {"url": 3}},
    ],
    ids=["negative-failures", "unknown-outcome", "unknown-key", "non-string-spec"],
)
def test_entry_rejects_bad_data(change: dict[str, object]) -> None:
    data = {**entry().model_dump(), **change}
    with pytest.raises(ValidationError):
        LedgerEntry.model_validate(data)


def test_entry_and_state_are_frozen() -> None:
    with pytest.raises(ValidationError):
        entry().failures = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        LedgerState().format_version = 2  # type: ignore[misc]
