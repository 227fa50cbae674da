"""Fixtures of the end-to-end tests: a fresh emulator per test (see :mod:`e2e_support`)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator.config import AccountConfig, EmulatorConfig
from reconciler.emulator.server import running_emulator

from .e2e_support import ACCOUNTS, TIME_SCALE, World


@pytest.fixture
def world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """A fresh emulator with the :data:`ACCOUNTS`, their keys in the environment."""
    keys = {name: f"sk-{name}-{secrets.token_hex(12)}" for name in ACCOUNTS}
    for name, (_, _, key_env) in ACCOUNTS.items():
        monkeypatch.setenv(key_env, keys[name])
    monkeypatch.delenv("RECONCILER_API_BASE", raising=False)
    monkeypatch.delenv("RECONCILER_LEDGER", raising=False)
    monkeypatch.delenv("RECONCILER_SPAM_WINDOW", raising=False)
    config = EmulatorConfig(
        accounts=[
            AccountConfig(name=name, key=keys[name], api=api, queue_limit=limit)
            for name, (api, limit, _) in ACCOUNTS.items()
        ],
        time_scale=TIME_SCALE,
        seed=7,
    )
    with running_emulator(config) as emulator:
        world = World(emulator, tmp_path, capsys, keys)
        yield world
    world.assert_no_key_in_outputs()
