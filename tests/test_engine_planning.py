"""The plan is made while the listings come in (issue 11: time before the first load).

The declared models (each spec hashed) do not depend on the live state, so they are resolved
while the listing requests are on their way; and each account is planned as soon as its own
listing is in, not after the last one. The result is the same plan as one made at the end.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from reconciler import engine
from reconciler.apply import ApplyOptions
from reconciler.clock import FakeClock
from reconciler.core.ledger_entries import LedgerState
from reconciler.core.plan import AccountPlan, make_plan, plan_account
from reconciler.emulator import EmulatorConfig, create_app
from reconciler.emulator.config import AccountConfig
from reconciler.engine import ApiAccess, apply_accounts, plan_accounts
from reconciler.ledger.memory import MemorySession
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.models import LoadedAccount

from .test_apply_fleet_polls import _manifest

pytestmark = pytest.mark.anyio

ACCOUNTS = {f"plan-{n}": ("community" if n % 2 else "enterprise") for n in range(6)}
ANSWER_AFTER = 5.0  # virtual seconds each listing takes
T = TypeVar("T", bound=httpx.AsyncBaseTransport)


@dataclass
class SlowListings(httpx.AsyncBaseTransport):
    """The in-process emulator, each answer some virtual seconds late; notes what was ready."""

    inner: httpx.AsyncBaseTransport
    clock: FakeClock
    accounts: tuple[object, ...] = ()
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
    access, transport = _world(tmp_path, clock, lambda inner, _: SlowListings(inner, clock))
    transport.accounts = access.accounts
    accounts = access.accounts
    result = await plan_accounts(access, LedgerState())
    assert transport.resolved_at_answers[0] == len(ACCOUNTS)  # all of them, before any answer
    # planned account by account as listings came in: the same plan as made at the end
    at_the_end = make_plan(accounts, result.live, LedgerState())  # empty ledger: no timing
    assert result.plan.accounts == at_the_end.accounts
    assert not result.plan.blockers and len(result.plan.accounts) == len(ACCOUNTS)


@dataclass
class LateAccount(httpx.AsyncBaseTransport):
    """The in-process emulator; each answer to one account ``late`` virtual s late (others 1 s)."""

    inner: httpx.AsyncBaseTransport
    clock: FakeClock
    keys: dict[str, str]  # key → account
    late_account: str
    late: float = 20.0
    answered: list[tuple[float, str]] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        account = self.keys[json.loads(request.content)["key"]]
        await self.clock.sleep(self.late if account == self.late_account else 1.0)
        response = await self.inner.handle_async_request(request)
        self.answered.append((self.clock.now() - 1000.0, account))
        return response


def _world(
    root: Path,
    clock: FakeClock,
    transport_for: Callable[[httpx.AsyncBaseTransport, dict[str, str]], T],
) -> tuple[ApiAccess, T]:
    """The fleet's manifests, an in-process emulator (10 s loads) and the transport over it
    (``transport_for(emulator, {key: account})``)."""
    keys = {name: f"sk-{name}-{secrets.token_hex(8)}" for name in ACCOUNTS}
    config = EmulatorConfig(
        accounts=[
            AccountConfig(name=name, key=keys[name], api=api) for name, api in ACCOUNTS.items()
        ],
        time_scale=1.0,
        load_seconds=10.0,
        seed=5,
    )
    for name, api in ACCOUNTS.items():
        _manifest(root, name, api)
    emulator = httpx.ASGITransport(app=create_app(config, real_clock=clock.now))
    transport = transport_for(emulator, {key: name for name, key in keys.items()})
    access = ApiAccess(
        accounts=load_manifests([str(root)]),
        environ={f"MODELSLAB_FLEET_KEY_{n.upper().replace('-', '_')}": keys[n] for n in ACCOUNTS},
        api_base="http://emulator/api/",
        transport=transport,
        clock=clock,
    )
    return access, transport


def _late(
    account: str, clock: FakeClock
) -> Callable[[httpx.AsyncBaseTransport, dict[str, str]], LateAccount]:
    return lambda inner, keys: LateAccount(inner, clock, keys, account)


def _note_plans(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> list[tuple[float, str]]:
    """When (virtual seconds from the start) each account is planned, in order, from now on."""
    planned: list[tuple[float, str]] = []

    def noting(account: LoadedAccount, *args: Any, **kwargs: Any) -> AccountPlan:
        planned.append((clock.now() - 1000.0, account.name))
        return plan_account(account, *args, **kwargs)

    monkeypatch.setattr(engine, "plan_account", noting)
    return planned


def _late_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[ApiAccess, LateAccount, list[tuple[float, str]]]:
    """The accounts, with ``plan-0``'s listing late, and when each gets planned from now on."""
    clock = FakeClock(start=1000.0)
    access, transport = _world(tmp_path, clock, _late("plan-0", clock))
    return access, transport, _note_plans(monkeypatch, clock)


async def test_each_account_is_planned_as_soon_as_its_own_listing_is_in(
    tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, _, planned = _late_world(tmp_path, monkeypatch)
    await plan_accounts(access, LedgerState())
    early = {name for at, name in planned if at < 20.0}
    assert early == set(ACCOUNTS) - {"plan-0"}  # not after the late account's listing
    assert [name for at, name in planned if at >= 20.0] == ["plan-0"]


async def test_an_account_is_re_planned_for_the_report_when_its_part_ends(
    tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not after the last account's last listing (the work was all after the last request)."""
    access, transport, planned = _late_world(tmp_path, monkeypatch)
    _, report = await apply_accounts(access, MemorySession(), ApplyOptions(timeout=36_000.0))
    assert all(a.converged for a in report.accounts), report
    last_answer = max(at for at, _ in transport.answered)
    replans = {name: at for at, name in planned[len(ACCOUNTS) :]}  # after the plan's own
    assert set(replans) == set(ACCOUNTS)
    assert all(at < last_answer for name, at in replans.items() if name != "plan-0"), replans
