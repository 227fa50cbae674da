"""Injected faults: deterministic under a seed, and applied before or after processing."""

from __future__ import annotations

import json
import time

import anyio
import httpx
import pytest

from reconciler.emulator import EmulatorState, create_app

from .emulator_support import COMMUNITY_KEY, LOAD_BODY, control, in_process, make_config, owned

pytestmark = pytest.mark.anyio

MIXED = {"error_rate": 0.2, "failed_rate": 0.2, "malformed_rate": 0.2}


async def fault_sequence(seed: int, requests: int = 40) -> list[tuple[int, str]]:
    """(HTTP status, first bytes of the body) of ``requests`` listings under mixed faults."""
    app = create_app(make_config(seed=seed, spam_window_seconds=0))
    seen: list[tuple[int, str]] = []
    async with in_process(app) as client:
        await client.post(control(client, "faults"), json=MIXED)
        for _ in range(requests):
            answer = await client.post("v3/finetune_list", json={"key": COMMUNITY_KEY})
            seen.append((answer.status_code, answer.text[:12]))
    return seen


async def test_same_seed_same_faults_other_seed_other_faults() -> None:
    first, again, other = await fault_sequence(7), await fault_sequence(7), await fault_sequence(8)
    assert first == again
    assert first != other
    kinds = {code for code, _ in first}
    assert {200, 500} <= kinds  # successes, and 5xx or Failed, Try Again (modern: 500)


async def test_seed_in_the_faults_request_restarts_the_sequence() -> None:
    app = create_app(make_config(spam_window_seconds=0))
    runs: list[list[int]] = []
    async with in_process(app) as client:
        for _ in range(2):
            await client.post(control(client, "faults"), json={"error_rate": 0.5, "seed": 3})
            codes = []
            for _ in range(20):
                codes.append(
                    (await client.post("v3/finetune_list", json={"key": COMMUNITY_KEY})).status_code
                )
            runs.append(codes)
    assert runs[0] == runs[1]
    assert set(runs[0]) > {200}


async def test_errors_are_5xx_in_both_modes(
    client: httpx.AsyncClient, state: EmulatorState
) -> None:
    await client.post(control(client, "faults"), json={"error_rate": 1})
    codes = set()
    for number in range(30):
        answer = await client.post("v3/load_model", json=LOAD_BODY | {"model_id": f"m{number}"})
        codes.add(answer.status_code)
        assert answer.json()["status"] == "error"
    assert codes <= {500, 502, 503}
    assert len(codes) > 1
    assert state.accounts["studio"].models == {}  # a 5xx fault happens before processing


async def test_failed_try_again_is_not_processed(client: httpx.AsyncClient) -> None:
    await client.post(control(client, "faults"), json={"failed_rate": 1})
    answer = await client.post("v3/load_model", json=LOAD_BODY)
    assert answer.json()["message"] == "Failed, Try Again"
    await client.post(control(client, "faults"), json={"failed_rate": 0})
    assert await owned(client) == []


async def test_malformed_answers_are_processed_but_unreadable(
    client: httpx.AsyncClient, state: EmulatorState
) -> None:
    await client.post(control(client, "faults"), json={"malformed_rate": 1})
    await client.post(control(client, "settings"), json={"load_seconds": 0})  # no queue limit
    media_types = set()
    for number in range(12):
        answer = await client.post("v3/load_model", json=LOAD_BODY | {"model_id": f"m{number}"})
        assert answer.status_code == 200
        media_types.add(answer.headers["content-type"].split(";")[0])
        with pytest.raises(json.JSONDecodeError):
            json.loads(answer.text)
    assert media_types == {"text/html", "application/json"}
    assert len(state.accounts["studio"].models) == 12


async def test_hung_answer_loses_the_answer_not_the_effect(
    client: httpx.AsyncClient, state: EmulatorState
) -> None:
    await client.post(control(client, "faults"), json={"hang_rate": 1})
    with anyio.move_on_after(0.3) as scope:
        await client.post("v3/load_model", json=LOAD_BODY)
    assert scope.cancelled_caught
    assert "analog-diffusion" in state.accounts["studio"].models


async def test_latency(client: httpx.AsyncClient) -> None:
    await client.post(control(client, "faults"), json={"latency_ms": 150})
    started = time.monotonic()
    await client.post("v3/finetune_list", json={"key": COMMUNITY_KEY})
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    await client.get(control(client, "state"))  # the control surface has no faults
    assert time.monotonic() - started < 0.15


async def test_faults_are_updated_field_by_field(client: httpx.AsyncClient) -> None:
    await client.post(control(client, "faults"), json={"latency_ms": 5, "fail_urls": ["a/b"]})
    answer = await client.post(control(client, "faults"), json={"error_rate": 0.1})
    assert answer.json() | {"seed": None} == {
        "latency_ms": 5,
        "error_rate": 0.1,
        "hang_rate": 0,
        "malformed_rate": 0,
        "failed_rate": 0,
        "fail_urls": ["a/b"],
        "seed": None,
    }
    cleared = await client.post(control(client, "faults"), json={"latency_ms": 0, "fail_urls": []})
    assert cleared.json()["latency_ms"] == 0
    assert cleared.json()["fail_urls"] == []


@pytest.mark.parametrize(
    "body",
    [{"error_rate": 2}, {"error_rate": 0.6, "hang_rate": 0.6}, {"bogus": 1}, {"latency_ms": -1}],
)
async def test_bad_faults_are_refused(client: httpx.AsyncClient, body: dict[str, float]) -> None:
    answer = await client.post(control(client, "faults"), json=body)
    assert answer.status_code == 400
    assert answer.json()["status"] == "error"


async def test_overlapping_partial_rates_are_refused(client: httpx.AsyncClient) -> None:
    await client.post(control(client, "faults"), json={"error_rate": 0.6})
    answer = await client.post(control(client, "faults"), json={"hang_rate": 0.6})
    assert answer.status_code == 400
