"""The plan is made while the listings come in (issue 11: time before the first load).

The declared models (each spec hashed) do not depend on the live state, so they are resolved
while the listing requests are on their way; and each account is planned as soon as its own
listing is in, not after the last one. The result is the same plan as one made at the end.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from reconciler.clock import FakeClock
from reconciler.core.ledger_entries import LedgerState
from reconciler.core.plan import make_plan
from reconciler.emulator import EmulatorConfig, create_app
from reconciler.emulator.config import AccountConfig
from reconciler.engine import ApiAccess, plan_accounts
from reconciler.manifest.loader import load_manifests

from .test_apply_fleet_polls import _manifest

pytestmark = pytest.mark.anyio

ACCOUNTS = {f"plan-{n}": ("community" if n % 2 else "enterprise") for n in range(6)}
ANSWER_AFTER = 5.0  # virtual seconds each listing takes


@dataclass
class SlowListings(httpx.AsyncBaseTransport):
    """The in-process emulator, each answer some virtual seconds late; notes what was ready."""

    inner: httpx.AsyncBaseTransport
    clock: FakeClock
    accounts: tuple[object, ...]
    #: At each answer: how many accounts had their declared models resolved already.
    resolved_at_answers: list[int] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.clock.sleep(ANSWER_AFTER)
        self.resolved_at_answers.append(sum("_resolved" in vars(a) for a in self.accounts))
        return await self.inner.handle_async_request(request)


async def test_declared_models_are_resolved_before_any_listing_answers(
    tmp_path: Path, anyio_backend: str
) -> None:
    clock = FakeClock(start=1000.0)
    keys = {name: f"sk-{name}-{secrets.token_hex(8)}" for name in ACCOUNTS}
    config = EmulatorConfig(
        accounts=[
            AccountConfig(name=name, key=keys[name], api=api) for name, api in ACCOUNTS.items()
        ],
        time_scale=1.0,
        seed=3,
    )
    for name, api in ACCOUNTS.items():
        _manifest(tmp_path, name, api)
    accounts = load_manifests([str(tmp_path)])
    transport = SlowListings(
        httpx.ASGITransport(app=create_app(config, real_clock=clock.now)), clock, accounts
    )
    access = ApiAccess(
        accounts=accounts,
        environ={f"MODELSLAB_FLEET_KEY_{n.upper().replace('-', '_')}": keys[n] for n in ACCOUNTS},
        api_base="http://emulator/api/",
        transport=transport,
        clock=clock,
    )
    result = await plan_accounts(access, LedgerState())
    assert transport.resolved_at_answers[0] == len(ACCOUNTS)  # all of them, before any answer
    # planned account by account as listings came in: the same plan as made at the end
    at_the_end = make_plan(accounts, result.live, LedgerState())  # empty ledger: no timing
    assert result.plan.accounts == at_the_end.accounts
    assert not result.plan.blockers and len(result.plan.accounts) == len(ACCOUNTS)
