"""An in-process emulator for a fleet of accounts on a fake clock (the fleet tests of apply)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from starlette.applications import Starlette

from reconciler.clock import FakeClock
from reconciler.emulator import EmulatorConfig, create_app
from reconciler.emulator.config import AccountConfig


def fleet_emulator(
    accounts: Mapping[str, str], queue_limit: int, clock: FakeClock, seed: int
) -> tuple[Starlette, dict[str, str]]:
    """The emulator of ``accounts`` (name → api), on ``clock`` (1 emulated s per s), and each
    account's key (random: none is ever written where a test could leak it)."""
    keys = {name: f"sk-{name}-{secrets.token_hex(8)}" for name in accounts}
    config = EmulatorConfig(
        accounts=[
            AccountConfig(name=name, key=keys[name], api=api, queue_limit=queue_limit)
            for name, api in accounts.items()
        ],
        time_scale=1.0,
        seed=seed,
    )
    return create_app(config, real_clock=clock.now), keys
