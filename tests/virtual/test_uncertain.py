"""End to end, uncertainty: what apply does when it cannot know whether a request landed, or
cannot list an account for a while. It never resends blindly, never records a spec the server
may not have, and never gives up an account over one failed listing."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest

from reconciler.apply import ApplyOptions
from reconciler.core.ledger_entries import LedgerState
from reconciler.engine import ApiAccess, apply_accounts, plan_accounts
from reconciler.ledger.memory import MemorySession

from ..e2e.e2e_support import community_model, enterprise_model
from .test_failures import LoseFirstLoad, _config
from .virtual_support import VirtualWorld as World

READY = "model_ready"
FAST = ApplyOptions(timeout=20.0, poll_interval=0.6)


def _single_try(config: ApiAccess) -> ApiAccess:
    """The config with reads tried once, so that a failed listing reaches the engine."""
    return dataclasses.replace(
        config, settings=dataclasses.replace(config.settings, retry_attempts=1)
    )


async def _first_apply(world: World, account: str, models: list[dict[str, str]]) -> LedgerState:
    """Apply ``models`` plainly and return the ledger it leaves."""
    world.manifest(account, models)
    session = MemorySession()
    _, report = await apply_accounts(_config(world, account, world.transport), session, FAST)
    assert report.ok(), report.model_dump_json(indent=2)
    ledger = session.current_state()
    world.advance(30)  # a spam window: the next run's first listing is a new request
    return ledger


@pytest.mark.anyio
async def test_a_lost_enterprise_replace_is_not_recorded_as_applied(world: World) -> None:
    """The replace never reached the server and the listing cannot tell: the item fails as
    unconfirmed, the ledger keeps the old spec, and the next plan replaces again."""
    ledger = await _first_apply(world, "farm", [enterprise_model("m", url="org/v1")])
    world.manifest("farm", [enterprise_model("m", url="org/v2")])
    transport = LoseFirstLoad(world.transport, deliver=False)

    session = MemorySession(ledger)
    _, report = await apply_accounts(_config(world, "farm", transport), session, FAST)
    after = session.current_state()

    assert transport.lost == ["m"]
    item = report.accounts[0].items[0]
    assert (item.action.value, item.outcome.value) == ("replace", "failed")
    assert item.failure_reason == "api-unreachable"
    assert not report.ok()
    assert after is not None
    assert after.entries("farm")["m"].spec["url"] == "org/v1"  # not the unconfirmed v2
    assert world.models("farm")["m"]["spec"]["url"] == "org/v1"
    world.advance(30)
    replanned = await plan_accounts(_config(world, "farm", world.transport), after)
    assert [c.action.value for c in replanned.plan.accounts[0].changes] == ["replace"]


@pytest.mark.anyio
async def test_a_landed_enterprise_replace_is_confirmed_by_the_listing(world: World) -> None:
    """The answer was lost but the replace landed: the model leaves the listing while it
    loads, which proves it; the run waits for it and records the new spec."""
    ledger = await _first_apply(world, "farm", [enterprise_model("m", url="org/v1")])
    world.manifest("farm", [enterprise_model("m", url="org/v2")])
    transport = LoseFirstLoad(world.transport, deliver=True)

    session = MemorySession(ledger)
    _, report = await apply_accounts(_config(world, "farm", transport), session, FAST)
    after = session.current_state()

    assert report.ok(), report.model_dump_json(indent=2)
    assert after is not None and after.entries("farm")["m"].spec["url"] == "org/v2"
    assert world.models("farm")["m"]["spec"]["url"] == "org/v2"
    assert world.models("farm")["m"]["loads"] == 2  # the first apply's, and one replace


class LoseLoadAnswerThenListings(httpx.AsyncBaseTransport):
    """The first load lands but its answer is lost, and the next ``blind`` listings fail."""

    def __init__(self, inner: httpx.AsyncBaseTransport, blind: int) -> None:
        self._inner = inner
        self._blind = blind
        self.lost = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_load = request.url.path.endswith("/load_model")
        if is_load and not self.lost:
            self.lost = True
            response = await self._inner.handle_async_request(request)
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        if self.lost and self._blind > 0 and not is_load:
            self._blind -= 1
            raise httpx.ConnectError("the API is unreachable for a moment", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.anyio
async def test_a_load_is_not_resent_when_the_check_listing_fails(world: World) -> None:
    """Could not look is not "did not land": the load is never sent again; a later listing
    confirms it, and the run converges with a single load on the server."""
    world.manifest(
        "studio",
        [community_model("m")],
    )
    transport = LoseLoadAnswerThenListings(world.transport, blind=2)
    config = _single_try(_config(world, "studio", transport))

    _, report = await apply_accounts(config, MemorySession(), FAST)

    assert report.ok(), report.model_dump_json(indent=2)
    assert world.models("studio")["m"]["loads"] == 1
    assert world.count("v3/load_model", "studio") == 1


class FailListings(httpx.AsyncBaseTransport):
    """Every listing after the first ``good`` ones fails ``bad`` times, then recovers."""

    def __init__(self, inner: httpx.AsyncBaseTransport, good: int, bad: int) -> None:
        self._inner = inner
        self._good, self._bad = good, bad

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/get_all_models"):
            if self._good > 0:
                self._good -= 1
            elif self._bad > 0:
                self._bad -= 1
                return httpx.Response(500, json={"status": "error", "message": "Server Error"})
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.anyio
async def test_failed_listings_while_waiting_do_not_abandon_the_account(world: World) -> None:
    world.manifest("farm", [enterprise_model("a"), enterprise_model("b")])
    config = _single_try(_config(world, "farm", FailListings(world.transport, good=1, bad=3)))

    session = MemorySession()
    _, report = await apply_accounts(config, session, FAST)

    assert report.ok(), report.model_dump_json(indent=2)
    assert world.statuses("farm") == {"a": READY, "b": READY}
    ledger = session.current_state()
    assert {e.outcome for e in ledger.entries("farm").values()} == {"ready"}


@pytest.mark.anyio
async def test_a_failing_enterprise_load_frees_its_queue_place_after_the_grace(
    world: World,
) -> None:
    """An enterprise server never lists a failed load; after ``load_grace`` it stops holding
    the account's only queue place, so the other model still loads."""
    world.faults(fail_urls=["org/broken"])
    world.manifest(
        "narrow-farm",
        [enterprise_model("a-broken", url="org/broken"), enterprise_model("b-good")],
        queue_limit=1,
    )
    options = ApplyOptions(timeout=8.0, poll_interval=0.6, load_grace=2.0)

    _, report = await apply_accounts(
        _config(world, "narrow-farm", world.transport), MemorySession(), options
    )

    assert world.statuses("narrow-farm") == {"a-broken": "model_failed", "b-good": READY}
    outcomes = {i.model_id: i.outcome.value for i in report.accounts[0].items}
    assert outcomes == {"a-broken": "timed-out", "b-good": "done"}


def test_an_incomplete_plan_says_so_and_is_not_saved(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.manifest(
        "studio",
        [community_model("m")],
    )
    world.manifest("farm", [enterprise_model("x")])
    monkeypatch.delenv("MODELSLAB_E2E_KEY_FARM")
    saved = world.root / "plan.json"

    planned = world.plan("--out", str(saved))

    assert planned.code == 1
    assert "the plan is incomplete: could not read farm" in planned.out
    assert "No changes. Every account" not in planned.out
    assert not saved.exists()
    as_json = world.plan("-o", "json")
    assert json.loads(as_json.out)["unread"] == ["farm"]


@pytest.mark.anyio
async def test_each_request_is_recorded_before_it_is_sent_and_as_it_is_accepted(
    world: World,
) -> None:
    """An interrupted run still leaves a ledger that knows what may have been sent: each
    load's intent is recorded before the request, its acceptance as soon as the answer comes,
    and its outcome at the end."""
    world.manifest("farm", [enterprise_model("a"), enterprise_model("b")])
    session = MemorySession()

    _, report = await apply_accounts(_config(world, "farm", world.transport), session, FAST)

    assert report.ok(), report.model_dump_json(indent=2)
    steps = [
        (model_id, entry.outcome if entry else None, bool(entry and entry.pending))
        for _, model_id, entry in session.records
    ]
    for model_id in ("a", "b"):
        assert [step for step in steps if step[0] == model_id] == [
            (model_id, "pending", True),  # the intent, before the request
            (model_id, "applied", False),  # accepted
            (model_id, "ready", False),  # the outcome
        ]
    # one wave: both intents are on disk before either answer is recorded
    assert [s[1] for s in steps[:2]] == ["pending", "pending"]
    assert session.claimed == ["farm"] and session.checkpoints == ["farm"]
    final = session.current_state()
    assert {e.outcome for e in final.entries("farm").values()} == {"ready"}


def test_an_unusable_api_base_is_an_invalid_manifest(world: World) -> None:
    """Issue 14: validate and plan agree; an unusable api_base is refused before any request."""
    world.manifest(
        "studio",
        [community_model("m")],
    )
    world.manifest("farm", [enterprise_model("x")], api_base="http://127.0.0.1:99999/api/")

    planned = world.plan("-o", "json")

    assert planned.code == 1
    assert "farm.yaml:3:11: api_base: invalid API base URL" in planned.err
    assert "the port 99999 is not in 1-65535" in planned.err
    assert "Traceback" not in planned.text
    assert world.count("v3/finetune_list") == 0  # refused before any request
