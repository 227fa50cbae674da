"""End to end, failures: a load that fails is reported per item while everything else
converges, and a load whose answer is lost is re-observed, never blindly sent twice."""

from __future__ import annotations

import json

import httpx
import pytest

from reconciler.api.client import ClientSettings
from reconciler.apply import ApplyOptions
from reconciler.engine import ApiAccess, apply_accounts
from reconciler.manifest.loader import load_manifests

from ..e2e.e2e_support import (
    APPLY_TIMEOUT,
    CLIENT_SPAM_WINDOW,
    POLL_INTERVAL,
    account_report,
    actions,
    community_model,
    enterprise_model,
    items,
)
from .virtual_support import VirtualWorld as World

READY = "model_ready"


def test_failing_url_fails_its_item_and_the_rest_converges(world: World) -> None:
    world.faults(fail_urls=["org/broken-weights"])
    world.manifest(
        "studio",
        [community_model("fine"), community_model("broken", url="org/broken-weights")],
    )
    world.manifest("farm", [enterprise_model("elsewhere")])

    applied = world.apply("-o", "json")
    assert applied.code == 1, applied.text
    report = applied.json()
    assert report["ok"] is False
    assert report["failure_reason"] == "apply-failed"

    studio = account_report(report, "studio")
    assert studio["converged"] is False
    assert studio["failure_reason"] == "apply-failed"
    broken, fine = items(report, "studio")["broken"], items(report, "studio")["fine"]
    assert (broken["outcome"], broken["failure_reason"]) == ("failed", "apply-failed")
    assert broken["condition"] == "failed"
    assert (fine["outcome"], fine["failure_reason"]) == ("done", None)
    farm = account_report(report, "farm")
    assert (farm["converged"], farm["failure_reason"]) == (True, None)

    assert world.statuses("studio") == {"fine": READY, "broken": "model_failed"}
    assert world.statuses("farm") == {"elsewhere": READY}

    next_plan = world.plan("-o", "json").json()
    assert actions(next_plan, "studio") == {"broken": "load", "fine": "noop"}  # retried next run


class LoseFirstLoad(httpx.AsyncBaseTransport):
    """The emulator over ``inner``, except that the first load's answer never comes back.

    With ``deliver`` the request reaches the server (the load starts) and only the answer is
    lost; without it, the request is lost on the way (nothing starts). Either way the client
    sees a read timeout after sending.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, *, deliver: bool) -> None:
        self._inner = inner
        self._deliver = deliver
        self.lost: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/load_model") and not self.lost:
            self.lost.append(json.loads(request.content)["model_id"])
            if self._deliver:
                response = await self._inner.handle_async_request(request)
                await response.aread()
                await response.aclose()
            raise httpx.ReadTimeout("the answer was lost on the way back", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _config(world: World, account: str, transport: httpx.AsyncBaseTransport) -> ApiAccess:
    """The engine's configuration for one account of the world, over ``transport``, on the
    world's clock."""
    return ApiAccess(
        accounts=load_manifests([str(world.manifests)]),
        environ={"MODELSLAB_E2E_KEY_" + account.upper().replace("-", "_"): world.keys[account]},
        api_base=world.emulator.base_url,
        settings=ClientSettings(
            request_timeout=5.0,
            spam_window=CLIENT_SPAM_WINDOW,
            retry_wait_initial=0.1,
            retry_wait_max=0.5,
        ),
        transport=transport,
        clock=world.clock,
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("account", "deliver"),
    [("studio", True), ("studio", False), ("farm", True)],
    ids=["community-answer-lost", "community-request-lost", "enterprise-answer-lost"],
)
async def test_lost_load_answer_is_reobserved_not_resent(
    world: World, account: str, deliver: bool
) -> None:
    """Through the engine with a transport that loses the first load: exactly one load starts.

    A community listing shows a running load, so a load that landed is seen and not resent,
    and one that never arrived is seen missing and sent again. An enterprise server does not
    list a loading model, so there a lost answer is never resent and the wait finds the model.
    """
    model = community_model if account == "studio" else enterprise_model
    world.manifest(account, [model("first"), model("second")])
    transport = LoseFirstLoad(world.transport, deliver=deliver)
    options = ApplyOptions(timeout=APPLY_TIMEOUT, poll_interval=POLL_INTERVAL)

    run, report = await apply_accounts(_config(world, account, transport), None, options)

    assert transport.lost == ["first"]
    assert [c.action.value for c in run.plan.accounts[0].changes] == ["load", "load"]
    assert report.ok(), report.model_dump_json(indent=2)
    models = world.models(account)
    assert {m: r["status"] for m, r in models.items()} == {"first": READY, "second": READY}
    assert models["first"]["loads"] == 1  # one load started on the server, never two
    endpoint = "v3/load_model" if account == "studio" else "v1/enterprise/load_model"
    # answer lost: the one request of each model reached the server; request lost: the resend
    assert world.count(endpoint, account) == 2


@pytest.mark.anyio
async def test_lost_enterprise_load_is_not_resent_within_the_run(world: World) -> None:
    """On enterprise a load that never arrived looks like one still running: the run does not
    resend it (no duplicate is possible), reports it unconfirmed, leaves the ledger as it was,
    and the next run loads it."""
    world.manifest("farm", [enterprise_model("first"), enterprise_model("second")])
    transport = LoseFirstLoad(world.transport, deliver=False)
    short = ApplyOptions(timeout=3.0, poll_interval=POLL_INTERVAL)

    _, report = await apply_accounts(_config(world, "farm", transport), None, short)

    assert transport.lost == ["first"]
    assert not report.ok()
    farm = report.accounts[0]
    first = next(i for i in farm.items if i.model_id == "first")
    assert (first.outcome.value, first.failure_reason) == ("failed", "api-unreachable")
    assert "no listing confirmed the load" in first.message
    assert farm.remaining == ("load first",)
    assert world.statuses("farm") == {"second": READY}
    assert world.count("v1/enterprise/load_model") == 1

    world.advance(30)  # one spam window: the next run's first listing is a new request
    retry = ApplyOptions(timeout=APPLY_TIMEOUT, poll_interval=POLL_INTERVAL)
    _, report = await apply_accounts(_config(world, "farm", world.transport), None, retry)
    assert report.ok(), report.model_dump_json(indent=2)
    assert {m: r["loads"] for m, r in world.models("farm").items()} == {"first": 1, "second": 1}
