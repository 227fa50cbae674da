"""The client against the in-process emulator, in both error transports (legacy and modern).

The emulator is driven only through its control surface (``/_emulator/…``), as scripts do; its
clock is moved forward instead of waiting, and its spam filter stays on (30 emulated seconds),
so every identical request here is either spaced by the clock or expected to be refused.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest

from reconciler.api.client import AccountClient, ApiClient, ClientSettings
from reconciler.api.responses import SPAM_PROBE_SHARE
from reconciler.api.secret import ApiKey
from reconciler.core.live import Condition
from reconciler.emulator import EmulatorConfig, create_app
from reconciler.errors import (
    ApiError,
    ApiUnreachable,
    InvalidKey,
    ModelNotFound,
    RateLimited,
    ServerError,
    ValidationFailed,
)

pytestmark = pytest.mark.anyio

ApiKind = Literal["community", "enterprise"]
BASE = "http://emulator/api/"
SPAM_WINDOW = 30.0
SPEC = {
    "url": "org/repo",
    "model_format": "diffusers",
    "model_category": "stable_diffusion",
    "model_visibility": "private",
    "model_name": "Model",
}
ENTERPRISE_SPEC = {"url": "org/repo", "model_type": "huggingface"}


@dataclass
class Emulator:
    """An in-process emulator, a client wired to it, and its control surface."""

    mode: str
    transport: httpx.ASGITransport
    client: ApiClient
    control: httpx.AsyncClient

    async def account(
        self, name: str, api: ApiKind, key: str, queue_limit: int = 5
    ) -> AccountClient:
        await self.post("accounts", name=name, key=key, api=api, queue_limit=queue_limit)
        return self.client.account(name, api, ApiKey(key), BASE, queue_limit)

    async def advance(self, seconds: float) -> None:
        await self.post("clock", advance_seconds=seconds)

    async def post(self, what: str, **body: Any) -> Any:
        response = await self.control.post(f"/_emulator/{what}", json=body)
        assert response.is_success, response.text
        return response.json()

    async def requests(self, account: str | None = None) -> dict[str, int]:
        """Requests per endpoint: of one account (keys it sent), or all that arrived."""
        counts: dict[str, Any] = (await self.control.get("/_emulator/requests")).json()
        found: dict[str, int] = (
            counts["endpoints"] if account is None else counts["accounts"].get(account, {})
        )
        return found


@asynccontextmanager
async def running(config: EmulatorConfig, settings: ClientSettings) -> AsyncIterator[Emulator]:
    transport = httpx.ASGITransport(app=create_app(config))
    async with (
        ApiClient(settings, transport) as client,
        httpx.AsyncClient(transport=transport, base_url="http://emulator") as control,
    ):
        yield Emulator(config.error_mode, transport, client, control)


@pytest.fixture(params=["legacy", "modern"])
async def emulator(
    request: pytest.FixtureRequest, fast: ClientSettings, anyio_backend: str
) -> AsyncIterator[Emulator]:
    async with running(EmulatorConfig(), fast) as emulator:
        await emulator.post("settings", error_mode=request.param)
        emulator.mode = request.param
        yield emulator


def code(emulator: Emulator, modern: int) -> int | None:
    """The HTTP status an error carries: ``modern`` in modern mode, none in legacy mode."""
    return modern if emulator.mode == "modern" else None


# -- community ---------------------------------------------------------------------------------


async def test_an_empty_community_account(emulator: Emulator) -> None:
    account = await emulator.account("studio", "community", "key-studio")
    live = await account.read_live()
    assert dict(live.models) == {}
    assert live.account == "studio"
    assert await emulator.requests("studio") == {
        "v3/finetune_list": 1,
        "v4/dreambooth/model_list": 1,
    }


async def test_load_then_read_live_shows_loading_then_ready(emulator: Emulator) -> None:
    account = await emulator.account("studio", "community", "key-studio")
    await account.load("m1", SPEC)
    await account.load("m2", {**SPEC, "url": "org/other"})
    live = await account.read_live()
    assert {m: live.condition(m) for m in live.models} == {"m1": "loading", "m2": "loading"}
    assert live.models["m1"].status == "model_loading"
    await emulator.advance(61)
    ready = await account.read_live()
    assert {m: ready.condition(m) for m in ready.models} == {"m1": "ready", "m2": "ready"}
    assert "midjourney" not in ready.models  # the public catalogue is not the account's
    assert ready.fingerprint != live.fingerprint


async def test_a_failed_load_and_an_eviction(emulator: Emulator) -> None:
    account = await emulator.account("studio", "community", "key-studio")
    await emulator.post("faults", fail_urls=["org/broken"])
    await account.load("good", SPEC)
    await account.load("bad", {**SPEC, "url": "org/broken"})
    await emulator.advance(61)
    live = await account.read_live()
    assert (live.condition("good"), live.condition("bad")) == ("ready", "failed")
    await emulator.advance(8 * 86400)
    evicted = await account.read_live()
    assert evicted.condition("good") is Condition.EVICTED


async def test_reload(emulator: Emulator) -> None:
    account = await emulator.account("studio", "community", "key-studio")
    await account.load("m1", SPEC)
    await emulator.advance(61)
    assert (await account.reload("m1")).message == "model already loaded"
    await emulator.advance(8 * 86400)
    assert (await account.read_live()).condition("m1") is Condition.EVICTED
    assert (await account.reload("m1")).message == "model reload started"
    await emulator.advance(SPAM_WINDOW + 1)
    assert (await account.read_live()).condition("m1") is Condition.LOADING


async def test_reload_of_an_unknown_id_is_model_not_found(emulator: Emulator) -> None:
    account = await emulator.account("studio", "community", "key-studio")
    with pytest.raises(ModelNotFound) as caught:
        await account.reload("ghost")
    assert caught.value.message == "Model id not found"
    assert caught.value.status_code == code(emulator, 404)


async def test_the_api_validates_the_load(emulator: Emulator) -> None:
    account = await emulator.account("studio", "community", "key-studio")
    with pytest.raises(ValidationFailed) as caught:
        await account.load("m1", {**SPEC, "url": "", "model_name": ""})
    assert caught.value.fields == {
        "url": ("The url field is required.",),
        "model_name": ("The model name field is required.",),
    }
    assert caught.value.status_code == code(emulator, 400)
    assert await emulator.requests("studio") == {"v3/load_model": 1}


@pytest.mark.parametrize("api", ["community", "enterprise"])
async def test_a_wrong_key_is_invalid_key(emulator: Emulator, api: ApiKind) -> None:
    await emulator.account("real", api, "the-real-key")
    impostor = emulator.client.account("real", api, ApiKey("a-wrong-key"), BASE)
    with pytest.raises(InvalidKey) as caught:
        await impostor.read_live()
    assert caught.value.status_code == code(emulator, 401)
    assert "valid API key" in caught.value.tip
    with pytest.raises(InvalidKey):
        await impostor.load("m1", SPEC if api == "community" else ENTERPRISE_SPEC)


async def test_a_key_of_the_other_api_is_invalid_key(emulator: Emulator) -> None:
    await emulator.account("farm", "enterprise", "key-farm")
    confused = emulator.client.account("farm", "community", ApiKey("key-farm"), BASE)
    with pytest.raises(InvalidKey):
        await confused.read_live()


# -- enterprise --------------------------------------------------------------------------------


async def test_an_empty_enterprise_server(emulator: Emulator) -> None:
    account = await emulator.account("farm", "enterprise", "key-farm")
    assert dict((await account.read_live()).models) == {}
    assert await emulator.requests("farm") == {"v1/enterprise/get_all_models": 1}


async def test_enterprise_load_verify_delete(emulator: Emulator) -> None:
    account = await emulator.account("farm", "enterprise", "key-farm")
    await account.load("e1", ENTERPRISE_SPEC)
    await account.load("lora1", {**ENTERPRISE_SPEC, "model_type": "lora"})
    assert await account.verify("e1") is False  # still loading: not on the server yet
    assert dict((await account.read_live()).models) == {}
    await emulator.advance(61)
    assert await account.verify("e1") is True
    live = await account.read_live()
    assert {m: live.condition(m) for m in live.models} == {"e1": "ready", "lora1": "ready"}
    assert live.models["e1"].loaded_at  # load_data, as the server wrote it
    await account.delete("e1")
    await emulator.advance(SPAM_WINDOW + 1)
    assert await account.verify("e1") is False
    assert set((await account.read_live()).models) == {"lora1"}
    with pytest.raises(ModelNotFound) as caught:
        await account.delete("ghost")
    assert caught.value.status_code == code(emulator, 404)


async def test_enterprise_validation(emulator: Emulator) -> None:
    account = await emulator.account("farm", "enterprise", "key-farm")
    with pytest.raises(ValidationFailed) as caught:
        await account.load("e1", {**ENTERPRISE_SPEC, "url": ""})
    assert set(caught.value.fields) == {"url"}


# -- rate limits and faults --------------------------------------------------------------------


async def test_an_identical_read_inside_the_spam_window_is_rate_limited(
    emulator: Emulator, fast: ClientSettings
) -> None:
    account = await emulator.account("studio", "community", "key-studio")
    await account.read_live()
    await emulator.advance(10)
    with pytest.raises(RateLimited) as caught:
        await account.read_live()
    # legacy: a probe after a share of the window; modern: the seconds left, from the body
    expected = 20 if emulator.mode == "modern" else fast.spam_window * SPAM_PROBE_SHARE
    assert caught.value.retry_after == pytest.approx(expected, abs=1)
    assert "spam filter" in caught.value.tip
    counts = await emulator.requests("studio")
    # every refusal is waited out, up to the rate-limit budget (not the failure budget)
    assert counts["v3/finetune_list"] == 2 + fast.rate_limited_attempts


async def test_the_queue_limit_is_rate_limited_and_the_load_is_not_duplicated(
    emulator: Emulator,
) -> None:
    account = await emulator.account("studio", "community", "key-studio", queue_limit=1)
    await account.load("m1", SPEC)
    with pytest.raises(RateLimited) as caught:
        await account.load("m2", SPEC)
    assert caught.value.retry_after is not None
    await emulator.advance(SPAM_WINDOW + 1)
    assert set((await account.read_live()).models) == {"m1"}
    await emulator.advance(61)
    await account.load("m2", SPEC)  # the queue has room again


async def test_the_guard_spaces_identical_requests_so_the_spam_filter_never_trips(
    fast: ClientSettings, anyio_backend: str
) -> None:
    # 100 emulated seconds per real second: the 30 s window is 0.3 s of real time.
    config = EmulatorConfig(time_scale=100, error_mode="modern")
    settings = ClientSettings(**{**fast.__dict__, "spam_window": 0.35, "retry_attempts": 1})
    async with running(config, settings) as emulator:
        account = await emulator.account("studio", "community", "key-studio")
        started = time.monotonic()
        for _ in range(3):
            await account.read_live()
        assert time.monotonic() - started >= 0.7
        assert await emulator.requests("studio") == {
            "v3/finetune_list": 3,
            "v4/dreambooth/model_list": 3,
        }


async def test_injected_server_errors_are_retried_for_reads_not_for_loads(
    emulator: Emulator, fast: ClientSettings
) -> None:
    account = await emulator.account("studio", "community", "key-studio")
    await emulator.post("faults", error_rate=1.0, seed=1)
    with pytest.raises(ServerError):
        await account.load("m1", SPEC)
    with pytest.raises(ServerError):
        await emulator.client.account("e", "enterprise", ApiKey("k"), BASE).read_live()
    assert await emulator.requests() == {
        "v3/load_model": 1,
        "v1/enterprise/get_all_models": fast.retry_attempts,
    }


async def test_a_hung_answer_is_lost_and_the_load_is_not_resent(
    emulator: Emulator, fast: ClientSettings
) -> None:
    account = await emulator.account("studio", "community", "key-studio")
    await emulator.post("faults", hang_rate=1.0, seed=1)
    settings = ClientSettings(**{**fast.__dict__, "request_timeout": 0.1})
    async with ApiClient(settings, emulator.transport) as impatient:
        hurried = impatient.account("studio", "community", ApiKey("key-studio"), BASE)
        with pytest.raises(ApiUnreachable) as caught:
            await hurried.load("m1", SPEC)
    assert caught.value.answer_lost
    await emulator.post("faults", hang_rate=0.0)
    live = await account.read_live()
    assert live.condition("m1") is Condition.LOADING  # the effect happened, once
    assert (await emulator.requests("studio"))["v3/load_model"] == 1


async def test_a_wrong_base_url_is_an_error_not_a_missing_model(emulator: Emulator) -> None:
    await emulator.account("farm", "enterprise", "key-farm")
    lost = emulator.client.account("farm", "enterprise", ApiKey("key-farm"), BASE + "v9/")
    with pytest.raises(ApiError) as caught:
        await lost.verify("e1")
    assert type(caught.value) is ApiError
    assert "check the API base URL" in str(caught.value)
