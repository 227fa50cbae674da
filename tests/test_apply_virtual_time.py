"""apply's scheduling, deadlines and polling on a fake clock, against the in-process emulator.

The client and the emulator share one :class:`FakeClock` (the emulator's clock scales the fake
clock's ``now`` at time scale 1), and requests go over ``httpx.ASGITransport``: a run with the
real defaults (60 s loads, a 30 s spam window, 30 s polls, a 300 s load grace) takes
milliseconds, and the tests assert on the virtual instants themselves.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.apply import ApplyOptions
from reconciler.clock import FakeClock
from reconciler.core.report import ApplyReport
from reconciler.emulator import EmulatorConfig, create_app
from reconciler.emulator.config import AccountConfig
from reconciler.engine import ApiAccess, apply_accounts
from reconciler.ledger.memory import MemorySession
from reconciler.manifest.loader import load_manifests

pytestmark = pytest.mark.anyio

BASE = "http://emulator/api/"
#: name → (api, queue limit)
ACCOUNTS = {"studio": ("community", 5), "narrow-farm": ("enterprise", 1)}
LISTINGS = ("v3/finetune_list", "v4/dreambooth/model_list", "v1/enterprise/get_all_models")


@dataclass
class Timed(httpx.AsyncBaseTransport):
    """The ASGI transport, noting the virtual instant and endpoint of every request."""

    inner: httpx.AsyncBaseTransport
    clock: FakeClock
    sent: list[tuple[float, str]] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((self.clock.now(), request.url.path.removeprefix("/api/")))
        return await self.inner.handle_async_request(request)


@dataclass
class VirtualWorld:
    """An in-process emulator on a fake clock, manifests on disk, and the run's config."""

    clock: FakeClock
    app_transport: httpx.ASGITransport
    transport: Timed
    root: Path
    keys: dict[str, str]

    def manifest(self, account: str, models: list[dict[str, Any]]) -> None:
        api, limit = ACCOUNTS[account]
        document = {
            "version": 1,
            "account": account,
            "api": api,
            "key_env": _key_env(account),
            "queue_limit": limit,
            "models": models,
        }
        path = self.root / f"{account}.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")

    def config(self, account: str) -> ApiAccess:
        return ApiAccess(
            accounts=load_manifests([str(self.root / f"{account}.yaml")]),
            environ={_key_env(account): self.keys[account]},
            api_base=BASE,
            transport=self.transport,
            clock=self.clock,
        )

    async def control(self, name: str, body: dict[str, Any] | None = None) -> Any:
        async with httpx.AsyncClient(
            transport=self.app_transport, base_url="http://emulator"
        ) as http:
            url = f"/_emulator/{name}"
            answer = await (http.get(url) if body is None else http.post(url, json=body))
        answer.raise_for_status()
        return answer.json()

    async def statuses(self, account: str) -> dict[str, str]:
        state = await self.control("state")
        found = next(a for a in state["accounts"] if a["name"] == account)
        return {m["model_id"]: m["status"] for m in found["models"]}


def _key_env(account: str) -> str:
    return "MODELSLAB_VIRTUAL_KEY_" + account.upper().replace("-", "_")


def _model(model_id: str, api: str, url: str | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {"model_id": model_id, "url": url or f"org/{model_id}"}
    if api == "enterprise":
        return model | {"model_type": "huggingface"}
    return model | {"model_format": "diffusers", "model_category": "stable_diffusion"}


@pytest.fixture
async def world(tmp_path: Path, anyio_backend: str) -> AsyncIterator[VirtualWorld]:
    clock = FakeClock(start=1000.0)
    keys = {name: f"sk-{name}-{secrets.token_hex(8)}" for name in ACCOUNTS}
    config = EmulatorConfig(
        accounts=[
            AccountConfig(name=name, key=keys[name], api=api, queue_limit=limit)
            for name, (api, limit) in ACCOUNTS.items()
        ],
        time_scale=1.0,
        seed=7,
    )
    app_transport = httpx.ASGITransport(app=create_app(config, real_clock=clock.now))
    yield VirtualWorld(clock, app_transport, Timed(app_transport, clock), tmp_path, keys)


async def _apply(world: VirtualWorld, account: str, options: ApplyOptions) -> ApplyReport:
    _, report = await apply_accounts(world.config(account), MemorySession(), options)
    return report


async def test_a_default_run_waits_a_60_s_load_in_virtual_time_polling_at_its_pace(
    world: VirtualWorld,
) -> None:
    """With the real defaults: listings never come closer than the spam window (30 s), the
    run ends at the first listing after the 60 s load, and no real minute passes."""
    world.manifest("studio", [_model("m", "community")])
    started = world.clock.now()

    report = await _apply(world, "studio", ApplyOptions())

    assert report.ok(), report.model_dump_json(indent=2)
    assert await world.statuses("studio") == {"m": "model_ready"}
    elapsed = world.clock.now() - started
    assert 60.0 <= elapsed < 60.0 + 2 * ApplyOptions().poll_interval
    listings = [at for at, endpoint in world.transport.sent if endpoint == "v3/finetune_list"]
    assert len(listings) >= 3  # the plan's, then polls until the load is seen ready
    gaps = [later - earlier for earlier, later in itertools.pairwise(listings)]
    assert min(gaps) >= 30.0


async def test_the_deadline_ends_the_wait_at_its_virtual_instant(world: VirtualWorld) -> None:
    """A 60 s load and a 40 s timeout: the run stops at the deadline, the item timed out."""
    world.manifest("studio", [_model("m", "community")])
    started = world.clock.now()

    report = await _apply(world, "studio", ApplyOptions(timeout=40.0))

    outcomes = {i.model_id: i.outcome.value for i in report.accounts[0].items}
    assert outcomes == {"m": "timed-out"}
    assert report.accounts[0].failure_reason == "not-converged"
    assert 40.0 <= world.clock.now() - started < 40.0 + 30.0  # one last request at most
    assert all(at - started <= 40.0 for at, _ in world.transport.sent)


async def test_a_failing_enterprise_load_frees_its_queue_place_after_the_grace(
    world: VirtualWorld,
) -> None:
    """An enterprise server never lists a failed load; after ``load_grace`` (the real 300 s)
    it stops holding the account's only queue place, so the other model still loads."""
    await world.control("faults", {"fail_urls": ["org/broken"]})
    world.manifest(
        "narrow-farm",
        [_model("a-broken", "enterprise", "org/broken"), _model("b-good", "enterprise")],
    )
    options = ApplyOptions(timeout=900.0)

    report = await _apply(world, "narrow-farm", options)

    assert await world.statuses("narrow-farm") == {
        "a-broken": "model_failed",
        "b-good": "model_ready",
    }
    outcomes = {i.model_id: i.outcome.value for i in report.accounts[0].items}
    assert outcomes == {"a-broken": "timed-out", "b-good": "done"}
    loads = [at for at, endpoint in world.transport.sent if endpoint.endswith("load_model")]
    assert len(loads) == 2
    assert loads[1] - loads[0] >= options.load_grace  # the queue place was held until then
