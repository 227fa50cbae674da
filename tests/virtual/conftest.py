"""Fixtures of the virtual-time end-to-end tests: a fresh in-process emulator per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator.config import AccountConfig, EmulatorConfig

from ..e2e.e2e_support import ACCOUNTS, TIME_SCALE
from .virtual_support import VirtualWorld, virtual_world


@pytest.fixture
def world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[VirtualWorld]:
    """The :data:`ACCOUNTS` on an in-process emulator, their keys in the environment, the
    client and the emulator on one fake clock."""
    keys = {name: f"sk-{name}-{secrets.token_hex(12)}" for name in ACCOUNTS}
    for name, (_, _, key_env) in ACCOUNTS.items():
        monkeypatch.setenv(key_env, keys[name])
    for name in ("RECONCILER_API_BASE", "RECONCILER_LEDGER", "RECONCILER_SPAM_WINDOW"):
        monkeypatch.delenv(name, raising=False)
    config = EmulatorConfig(
        accounts=[
            AccountConfig(name=name, key=keys[name], api=api, queue_limit=limit)
            for name, (api, limit, _) in ACCOUNTS.items()
        ],
        time_scale=TIME_SCALE,
        seed=7,
    )
    with virtual_world(config, tmp_path, capsys, keys, monkeypatch) as world:
        yield world
