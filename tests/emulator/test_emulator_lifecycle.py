"""A model's life on the emulated clock: load, ready, eviction, reload, failure, replace."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.emulator import AccountConfig, EmulatorConfig, EmulatorState, create_app
from reconciler.emulator.world import Account

from .emulator_support import (
    COMMUNITY_KEY,
    ENTERPRISE_KEY,
    ENTERPRISE_LOAD_BODY,
    LOAD_BODY,
    advance,
    control,
    in_process,
    make_config,
    owned,
    statuses,
)

pytestmark = pytest.mark.anyio

WEEK = 7 * 86400
MODEL = "analog-diffusion"


async def test_load_becomes_ready_after_sixty_seconds(client: httpx.AsyncClient) -> None:
    await client.post("v3/load_model", json=LOAD_BODY)
    assert await owned(client) == [MODEL]
    assert await statuses(client) == {MODEL: "model_loading"}
    await advance(client, 59)
    assert await statuses(client) == {MODEL: "model_loading"}
    await advance(client, 1.5)
    assert await statuses(client) == {MODEL: "model_ready"}


async def test_idle_week_evicts_then_reload_takes_two_minutes(client: httpx.AsyncClient) -> None:
    reload = {"key": COMMUNITY_KEY, "model_id": MODEL}
    await client.post("v3/load_model", json=LOAD_BODY)
    await advance(client, 60)
    await advance(client, WEEK)
    assert await owned(client) == [MODEL]
    assert await statuses(client) == {}
    answer = await client.post("v4/dreambooth/model_reload", json=reload)
    assert answer.json() == {"status": "success", "message": "model reload started"}
    assert await statuses(client) == {MODEL: "model_loading"}
    await advance(client, 119)
    assert await statuses(client) == {MODEL: "model_loading"}
    await advance(client, 1.5)
    assert await statuses(client) == {MODEL: "model_ready"}
    again = await client.post("v6/images/model_reload", json=reload)
    assert again.json() == {"status": "success", "message": "model already loaded"}


async def test_reload_while_loading_and_use_delays_eviction(
    client: httpx.AsyncClient, state: EmulatorState
) -> None:
    reload = {"key": COMMUNITY_KEY, "model_id": MODEL}
    await client.post("v3/load_model", json=LOAD_BODY)
    answer = await client.post("v4/dreambooth/model_reload", json=reload)
    assert answer.json() == {"status": "success", "message": "model load in progress"}
    await advance(client, 60 + WEEK - 10)
    state.use_model("studio", MODEL)
    await advance(client, 20)
    assert await statuses(client) == {MODEL: "model_ready"}
    await advance(client, WEEK)
    assert await statuses(client) == {}


async def test_fail_urls_end_model_failed(client: httpx.AsyncClient) -> None:
    await client.post(control(client, "faults"), json={"fail_urls": [LOAD_BODY["url"]]})
    await client.post("v3/load_model", json=LOAD_BODY)
    await advance(client, 60)
    assert await statuses(client) == {MODEL: "model_failed"}
    assert await owned(client) == [MODEL]
    await client.post(control(client, "faults"), json={"fail_urls": []})
    answer = await client.post("v3/load_model", json=LOAD_BODY | {"revision": "fp32"})
    assert answer.json()["status"] == "success"
    await advance(client, 60)
    assert await statuses(client) == {MODEL: "model_ready"}


async def test_loading_an_existing_id_replaces_it(
    client: httpx.AsyncClient, state: EmulatorState
) -> None:
    await client.post("v3/load_model", json=LOAD_BODY)
    await advance(client, 60)
    await client.post("v3/load_model", json=LOAD_BODY | {"url": "other/repo"})
    assert await statuses(client) == {MODEL: "model_loading"}
    record = state.model("studio", MODEL)
    assert record is not None
    assert record.spec["url"] == "other/repo"
    assert record.loads == 2


async def test_queue_limit_counts_loads_in_flight(client: httpx.AsyncClient) -> None:
    await client.post(
        control(client, "accounts"),
        json={"name": "tiny", "key": "t", "api": "community", "queue_limit": 1},
    )
    body = LOAD_BODY | {"key": "t"}
    assert (await client.post("v3/load_model", json=body)).json()["status"] == "success"
    # Re-loading the model in flight does not count it against itself.
    replaced = await client.post("v3/load_model", json=body | {"revision": "fp16"})
    assert replaced.json()["status"] == "success"
    refused = await client.post("v3/load_model", json=body | {"model_id": "second"})
    assert refused.json()["retry_after"] == 30
    await advance(client, 60)
    allowed = await client.post("v3/load_model", json=body | {"model_id": "second"})
    assert allowed.json()["status"] == "success"


async def test_queue_limit_in_modern_mode_is_429_with_retry_after() -> None:
    app = create_app(make_config(error_mode="modern"))
    async with in_process(app) as client:
        for number in range(5):
            await client.post("v3/load_model", json=LOAD_BODY | {"model_id": f"m{number}"})
        answer = await client.post("v3/load_model", json=LOAD_BODY | {"model_id": "m5"})
    assert answer.status_code == 429
    assert answer.json()["retry_after"] == 30
    assert answer.headers["retry-after"] == "30"


async def test_spam_window_runs_on_emulated_time(client: httpx.AsyncClient) -> None:
    body = {"key": COMMUNITY_KEY}
    assert (await client.post("v3/finetune_list", json=body)).json()["status"] == "success"
    await advance(client, 20)
    assert (await client.post("v3/finetune_list", json=body)).json()[
        "message"
    ] == "Rate limit exceeded"
    # A different endpoint or body is not the same request.
    assert isinstance((await client.post("v4/dreambooth/model_list", json=body)).json(), list)
    await advance(client, 11)
    assert (await client.post("v3/finetune_list", json=body)).json()["status"] == "success"


async def test_spam_window_setting(client: httpx.AsyncClient) -> None:
    await client.post(control(client, "settings"), json={"spam_window_seconds": 0})
    body = {"key": COMMUNITY_KEY}
    for _ in range(3):
        assert (await client.post("v3/finetune_list", json=body)).json()["status"] == "success"


async def test_settings_change_timings_and_mode(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        control(client, "settings"),
        json={
            "load_seconds": 5,
            "reload_seconds": 7,
            "idle_evict_seconds": 100,
            "error_mode": "modern",
        },
    )
    assert answer.json()["load_seconds"] == 5
    await client.post("v3/load_model", json=LOAD_BODY)
    await advance(client, 5)
    assert await statuses(client) == {MODEL: "model_ready"}
    await advance(client, 100)
    assert await statuses(client) == {}
    unknown = await client.post("v3/finetune_list", json={"key": "nope"})
    assert unknown.status_code == 401
    bad = await client.post(control(client, "settings"), json={"load_seconds": -1})
    assert bad.status_code == 400


async def test_enterprise_lists_by_model_type_and_never_evicts(client: httpx.AsyncClient) -> None:
    for model_id, model_type in [
        ("base", "huggingface"),
        ("style", "lora"),
        ("word", "embeddings"),
    ]:
        body = ENTERPRISE_LOAD_BODY | {"model_id": model_id, "model_type": model_type}
        await client.post("v1/enterprise/load_model", json=body)
    listing = await client.post("v1/enterprise/get_all_models", json={"key": ENTERPRISE_KEY})
    assert listing.json() == {
        "status": "success",
        "models": [],
        "lora_models": [],
        "embeddings_models": [],
    }
    await advance(client, 60 + 30 * 86400)
    listing = await client.post(
        "v1/enterprise/get_all_models", json={"key": ENTERPRISE_KEY, "n": 1}
    )
    body = listing.json()
    assert [m["model_id"] for m in body["models"]] == ["base"]
    assert [m["model_id"] for m in body["lora_models"]] == ["style"]
    assert [m["model_id"] for m in body["embeddings_models"]] == ["word"]
    assert body["models"][0]["load_data"].startswith("01/25/2023 11:5")


async def test_seed_model_and_state(client: httpx.AsyncClient, state: EmulatorState) -> None:
    state.seed_model("studio", "legacy-model", {"url": "a/b"})
    state.seed_model("studio", "gone", status="evicted")
    assert await statuses(client) == {"legacy-model": "model_ready"}
    assert await owned(client) == ["legacy-model", "gone"]
    snapshot = (await client.get(control(client, "state"))).json()
    studio = next(a for a in snapshot["accounts"] if a["name"] == "studio")
    assert "key" not in studio
    first, second = studio["models"]
    assert first["model_id"] == "legacy-model"
    assert first["spec"] == {"url": "a/b"}
    assert (first["status"], first["owned"], first["loaded"]) == ("model_ready", True, True)
    assert (second["status"], second["loaded"]) == ("evicted", False)
    assert first["created_at"].startswith("2023-01-25T11:5")
    with pytest.raises(ValueError, match="status must be one of"):
        state.seed_model("studio", "x", status="deploying")


async def test_clock_control(client: httpx.AsyncClient) -> None:
    before = (await client.get(control(client, "clock"))).json()
    after = (await client.post(control(client, "clock"), json={"advance_seconds": 3600})).json()
    assert after["now_seconds"] - before["now_seconds"] >= 3600
    assert after["now"].startswith("2023-01-25T12:5")
    backwards = await client.post(control(client, "clock"), json={"advance_seconds": -1})
    assert backwards.status_code == 400
    assert backwards.json()["status"] == "error"
    garbage = await client.post(control(client, "clock"), content=b"{")
    assert garbage.status_code == 400


async def test_accounts_control(client: httpx.AsyncClient) -> None:
    new = {"name": "other", "key": "other-key", "api": "enterprise"}
    added = await client.post(control(client, "accounts"), json=new)
    assert added.status_code == 201
    assert added.json() == {
        "status": "success",
        "account": {"name": "other", "api": "enterprise", "queue_limit": 5},
    }
    again = await client.post(control(client, "accounts"), json=new)
    assert again.status_code == 201
    clash = await client.post(
        control(client, "accounts"), json=new | {"key": COMMUNITY_KEY, "name": "x"}
    )
    assert clash.status_code == 409
    invalid = await client.post(
        control(client, "accounts"), json={"name": "y", "key": "k", "api": "free"}
    )
    assert invalid.status_code == 400
    answer = await client.post("v1/enterprise/system_details", json={"key": "other-key"})
    assert answer.json()["status"] == "ok"


async def test_requests_counters_and_reset(client: httpx.AsyncClient, state: EmulatorState) -> None:
    await client.post("v3/load_model", json=LOAD_BODY)
    await client.post("v3/finetune_list", json={"key": COMMUNITY_KEY})
    await client.post("v3/finetune_list", json={"key": "unknown"})
    counts = (await client.get(control(client, "requests"))).json()
    assert counts["total"] == 3
    assert counts["endpoints"] == {"v3/finetune_list": 2, "v3/load_model": 1}
    assert counts["accounts"] == {"studio": {"v3/finetune_list": 1, "v3/load_model": 1}}
    await client.post(control(client, "faults"), json={"latency_ms": 1})
    await client.post(
        control(client, "accounts"), json={"name": "z", "key": "z", "api": "community"}
    )
    assert (await client.post(control(client, "reset"))).json() == {"status": "success"}
    assert (await client.get(control(client, "requests"))).json()["total"] == 0
    assert set(state.accounts) == {"studio", "dedicated"}
    assert state.accounts["studio"].models == {}
    assert state.faults.settings.latency_ms == 0


async def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = create_app(make_config(state_file=path, start_time=None))
    async with in_process(first) as client:
        await client.post(
            control(client, "accounts"), json={"name": "late", "key": "l", "api": "community"}
        )
        await client.post("v3/load_model", json=LOAD_BODY)
        await advance(client, 60)
    second = create_app(make_config(state_file=path, start_time=None))
    async with in_process(second) as client:
        assert await statuses(client) == {MODEL: "model_ready"}
        assert (await client.post("v3/finetune_list", json={"key": "l"})).json()["data"] == []


async def test_a_key_is_known_from_the_moment_its_account_is_added_or_reset(
    client: httpx.AsyncClient,
) -> None:
    """Keys are looked up in an index (a scan of every account per request cost a fleet)."""
    body = {"key": "later-key"}
    before = await client.post("v1/enterprise/system_details", json=body)
    assert before.json()["message"] == "Invalid Api Key"  # the index is built by now
    new = {"name": "later", "key": "later-key", "api": "enterprise"}
    assert (await client.post(control(client, "accounts"), json=new)).status_code == 201
    after = await client.post("v1/enterprise/system_details", json=body)
    assert after.json()["status"] == "ok"
    assert (await client.post(control(client, "reset"), json={})).status_code == 200
    gone = await client.post("v1/enterprise/system_details", json=body)
    assert gone.json()["message"] == "Invalid Api Key"  # reset keeps the configured accounts
    kept = await client.post("v3/finetune_list", json={"key": COMMUNITY_KEY})
    assert kept.json()["status"] == "success"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_api_path_takes_only_post(client: httpx.AsyncClient, method: str) -> None:
    answer = await client.request(method, "v3/finetune_list")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST" and answer.text == "Method Not Allowed"


async def test_a_client_gone_before_its_body_came_is_not_answered_nor_processed() -> None:
    """What a server does with a request cut short: nothing (no error, no load started)."""
    app = create_app(make_config())
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v3/load_model",
        "raw_path": b"/api/v3/load_model",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    sent: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent == []
    assert app.state.emulator.accounts["studio"].models == {}


def test_an_account_added_while_the_key_index_is_being_built_is_found() -> None:
    """The index is built under the state's lock: one built from the accounts before an add
    running in another thread must not be kept (every request with the new key refused)."""
    state = EmulatorState(
        EmulatorConfig(accounts=[AccountConfig(name="a", key="ka", api="community")])
    )
    inside, added = threading.Event(), threading.Event()

    class Slow(dict[str, Account]):
        def values(self) -> Any:
            snapshot = list(super().values())
            if threading.current_thread().name == "api":
                inside.set()
                added.wait(5)
            return snapshot

    state.accounts = Slow(state.accounts)
    state._by_key = None
    reader = threading.Thread(target=lambda: state.account_for_key("ka"), name="api")
    reader.start()
    inside.wait(5)
    adder = threading.Thread(
        target=lambda: state.add_account(AccountConfig(name="b", key="kb", api="community"))
    )
    adder.start()
    adder.join(0.5)  # done by then unless the reader's build holds the lock (as it must)
    added.set()
    reader.join(5)
    adder.join(5)
    assert state.account_for_key("kb") is not None


async def test_under_a_root_path_the_api_is_served_as_without_one() -> None:
    transport = httpx.ASGITransport(app=create_app(make_config()), root_path="/emu")
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as client:
        answer = await client.post("/emu/api/v3/finetune_list", json={"key": COMMUNITY_KEY})
        assert answer.status_code == 200 and answer.json()["status"] == "success"
        assert (await client.get("/emu/api/v3/finetune_list")).status_code == 405
