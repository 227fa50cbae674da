"""Fixtures of the virtual-time end-to-end tests: a fresh in-process emulator per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from reconciler.clock import FakeClock
from reconciler.emulator import create_app
from reconciler.emulator.config import AccountConfig, EmulatorConfig
from reconciler.emulator.server import EmulatorHandle

from ..e2e.e2e_support import ACCOUNTS, TIME_SCALE
from .virtual_support import BASE_URL, CONTROL_URL, VirtualWorld, runs_in


@pytest.fixture
def world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[VirtualWorld]:
    """The :data:`ACCOUNTS` on an in-process emulator, the client and the emulator on one
    fake clock (its wall clock starts now, as the real-time world's does)."""
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
    clock = FakeClock(utc_start=datetime.now(UTC))
    app = create_app(config, real_clock=clock.now, real_sleep=clock.sleep)
    transport = httpx.ASGITransport(app=app)
    handle = EmulatorHandle(BASE_URL, CONTROL_URL, app, "127.0.0.1", 9)
    world = VirtualWorld(
        emulator=handle, root=tmp_path, capsys=capsys, keys=keys, clock=clock, transport=transport
    )
    try:
        with runs_in(monkeypatch, transport, clock):
            yield world
    finally:
        world.close()
    world.assert_no_key_in_outputs()
