"""Every documented request/response example of api-spec §2–3, replayed in both error modes.

Each answer is compared key by key with the documented example (spellings included:
``messege``, ``tip``/``tips``, ``load_data``, ``"status": "ok"``), and its HTTP status with what
the mode prescribes: 200 for everything in legacy, the documented 4xx/5xx in modern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler.emulator import EmulatorState, assumptions, create_app, replies

from .emulator_support import (
    COMMUNITY_KEY,
    ENTERPRISE_KEY,
    ENTERPRISE_LOAD_BODY,
    LOAD_BODY,
    advance,
    control,
    in_process,
    make_config,
)

pytestmark = pytest.mark.anyio

INVALID_KEY = {
    "status": "error",
    "message": "Invalid Api Key",
    "tip": "1. Make sure you are passing Content-Type: application/json in header. 2. Make sure "
    "you are doing POST request with valid JSON. 3. Make sure your JSON does not have error, use "
    "jsonlint to validate json array. 4. Make sure you have valid API key.",
}
SPAM = {
    "status": "error",
    "message": "Rate limit exceeded",
    "tips": "you are sending same request multiple times, spam filter is enabled, please wait for "
    "30 seconds and try again",
}
LOAD_DATA = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}$")
PUBLIC_MODEL_KEYS = [
    "model_id",
    "status",
    "created_at",
    "instance_prompt",
    "model_name",
    "description",
    "screenshots",
]


def same_shape(answer: httpx.Response, documented: dict[str, Any]) -> None:
    """The answer is JSON with exactly the documented keys and values."""
    body = answer.json()
    assert sorted(body) == sorted(documented)
    for key, value in documented.items():
        assert body[key] == value, key


async def test_finetune_list_empty(client: httpx.AsyncClient) -> None:
    answer = await client.post("v3/finetune_list", json={"key": COMMUNITY_KEY})
    assert answer.status_code == 200
    same_shape(answer, {"status": "success", "messege": "model list", "data": []})


async def test_finetune_list_holds_owned_ids(client: httpx.AsyncClient) -> None:
    await client.post("v3/load_model", json=LOAD_BODY)
    answer = await client.post("v3/finetune_list", json={"key": COMMUNITY_KEY})
    same_shape(answer, {"status": "success", "messege": "model list", "data": ["analog-diffusion"]})


async def test_model_list_is_a_bare_array_starting_with_the_catalogue(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("v4/dreambooth/model_list", json={"key": COMMUNITY_KEY})
    assert answer.status_code == 200
    items = answer.json()
    assert isinstance(items, list)
    assert [item["model_id"] for item in items[:3]] == [
        "midjourney",
        "anything-v3",
        "wifu-diffusion",
    ]
    assert items[0] == {
        "model_id": "midjourney",
        "status": "model_ready",
        "created_at": None,
        "instance_prompt": "mdjrny-v4 style",
        "model_name": "MidJourney V4",
        "description": "Openjourney is an open source Stable Diffusion fine tuned model on "
        "Midjourney images, by PromptHero",
        "screenshots": "https://d1okzptojspljx.cloudfront.net/generations/14853540911669470514.png",
    }
    assert items[1]["model_name"] == "Anything V3"
    assert items[1]["instance_prompt"] is None
    for item in items:
        assert list(item) == PUBLIC_MODEL_KEYS
        assert isinstance(item["screenshots"], str)


async def test_model_list_shows_own_models_with_the_seven_fields(
    client: httpx.AsyncClient,
) -> None:
    await client.post("v3/load_model", json=LOAD_BODY | {"model_image": "https://x/y.png"})
    items = (await client.post("v4/dreambooth/model_list", json={"key": COMMUNITY_KEY})).json()
    own = items[-1]
    assert list(own) == PUBLIC_MODEL_KEYS
    assert own["model_id"] == "analog-diffusion"
    assert own["status"] == "model_loading"
    assert own["model_name"] == "Analog Diffusion"
    assert own["screenshots"] == "https://x/y.png"
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000000Z$", own["created_at"])


async def test_load_model_starts_a_load(client: httpx.AsyncClient) -> None:
    answer = await client.post("v3/load_model", json=LOAD_BODY)
    assert answer.status_code == 200
    same_shape(answer, {"status": "success", "message": "model load started"})


async def test_load_model_with_every_optional_field(client: httpx.AsyncClient) -> None:
    body = LOAD_BODY | {
        "url": "https://civitai.com/api/download/models/132760?type=Model&format=SafeTensor",
        "model_format": "safetensors",
        "model_subcategory": None,
        "force_load": "yes",
        "revision": "fp32",
        "model_image": "https://x/y.png",
        "hf_upload": "no",
    }
    answer = await client.post("v3/load_model", json=body)
    same_shape(answer, {"status": "success", "message": "model load started"})


@pytest.mark.parametrize(
    ("change", "documented"),
    [
        ({"model_format": "zip"}, {"model_format": ["The selected model format is invalid."]}),
        ({"url": None}, {"url": ["The url field is required."]}),
        ({"url": ""}, {"url": ["The url field is required."]}),
        ({"model_id": 7}, {"model_id": ["The model id must be a string."]}),
        (
            {"model_category": "pony", "revision": "fp8"},
            {
                "model_category": ["The selected model category is invalid."],
                "revision": ["The selected revision is invalid."],
            },
        ),
    ],
)
async def test_load_model_validation_is_laravel_style(
    client: httpx.AsyncClient,
    expect_code: Callable[[int], int],
    change: dict[str, Any],
    documented: dict[str, list[str]],
) -> None:
    answer = await client.post("v3/load_model", json=LOAD_BODY | change)
    assert answer.status_code == expect_code(400)
    same_shape(answer, {"status": "error", "message": documented})


async def test_load_model_missing_fields_are_each_required(client: httpx.AsyncClient) -> None:
    answer = await client.post("v3/load_model", json={"key": COMMUNITY_KEY})
    message = answer.json()["message"]
    assert message == {
        "url": ["The url field is required."],
        "model_id": ["The model id field is required."],
        "model_format": ["The model format field is required."],
        "model_category": ["The model category field is required."],
        "model_visibility": ["The model visibility field is required."],
        "model_name": ["The model name field is required."],
    }


@pytest.mark.parametrize("path", ["v4/dreambooth/model_reload", "v6/images/model_reload"])
async def test_model_reload_of_an_unknown_id(
    client: httpx.AsyncClient, expect_code: Callable[[int], int], path: str
) -> None:
    answer = await client.post(path, json={"key": COMMUNITY_KEY, "model_id": "nope"})
    assert answer.status_code == expect_code(404)
    same_shape(answer, {"status": "error", "message": "Model id not found"})


async def test_model_reload_needs_a_model_id(
    client: httpx.AsyncClient, expect_code: Callable[[int], int]
) -> None:
    answer = await client.post("v4/dreambooth/model_reload", json={"key": COMMUNITY_KEY})
    assert answer.status_code == expect_code(400)
    same_shape(
        answer, {"status": "error", "message": {"model_id": ["The model id field is required."]}}
    )


async def test_enterprise_documented_answers(client: httpx.AsyncClient) -> None:
    key = {"key": ENTERPRISE_KEY}
    answer = await client.post("v1/enterprise/load_model", json=ENTERPRISE_LOAD_BODY)
    same_shape(answer, {"message": "model load started", "status": "success"})
    details = await client.post("v1/enterprise/system_details", json=key)
    same_shape(details, {"model_count": 0, "queue_time": 0, "status": "ok"})
    assert '"queue_time":0}' in details.text
    await advance(client, 60)
    verify = await client.post("v1/enterprise/verify_model", json=key | {"model_id": "hf-model"})
    same_shape(verify, {"status": "success", "message": "Model exists on server"})
    listing = await client.post("v1/enterprise/get_all_models", json=key)
    body = listing.json()
    assert sorted(body) == ["embeddings_models", "lora_models", "models", "status"]
    assert body["status"] == "success"
    assert [sorted(m) for m in body["models"]] == [["load_data", "model_id"]]
    assert body["models"][0]["model_id"] == "hf-model"
    assert LOAD_DATA.match(body["models"][0]["load_data"])
    assert body["models"][0]["load_data"].startswith("01/25/2023 11:5")
    cache = await client.post("v1/enterprise/clear_cache", json=key | {"n": 1})
    same_shape(cache, {"status": "success", "message": "Cache cleared successfully"})
    details = await client.post("v1/enterprise/system_details", json=key | {"n": 1})
    same_shape(details, {"model_count": 1, "queue_time": 0, "status": "ok"})
    delete = await client.post("v1/enterprise/delete_model", json=key | {"model_id": "hf-model"})
    same_shape(delete, {"status": "success", "message": "Model deleted on server"})


async def test_enterprise_not_on_server(
    client: httpx.AsyncClient, expect_code: Callable[[int], int]
) -> None:
    body = {"key": ENTERPRISE_KEY, "model_id": "ghost"}
    for path in ("v1/enterprise/verify_model", "v1/enterprise/delete_model"):
        answer = await client.post(path, json=body)
        assert answer.status_code == expect_code(404)
        same_shape(answer, {"status": "error", "message": "Model not found on server"})


async def test_enterprise_load_validation(
    client: httpx.AsyncClient, expect_code: Callable[[int], int]
) -> None:
    answer = await client.post(
        "v1/enterprise/load_model", json=ENTERPRISE_LOAD_BODY | {"model_type": "vae", "url": ""}
    )
    assert answer.status_code == expect_code(400)
    same_shape(
        answer,
        {
            "status": "error",
            "message": {
                "url": ["The url field is required."],
                "model_type": ["The selected model type is invalid."],
            },
        },
    )


@pytest.mark.parametrize(
    "send",
    [
        pytest.param({"json": {}}, id="no-key"),
        pytest.param({"json": {"key": "unknown"}}, id="unknown-key"),
        pytest.param({"json": {"key": 5}}, id="key-not-a-string"),
        pytest.param({"json": {"key": ENTERPRISE_KEY}}, id="enterprise-key-on-community"),
        pytest.param({"json": [COMMUNITY_KEY]}, id="json-not-an-object"),
        pytest.param(
            {
                "content": b'{"key": "community-key",}',
                "headers": {"content-type": "application/json"},
            },
            id="invalid-json",
        ),
        pytest.param({"data": {"key": COMMUNITY_KEY}}, id="form-encoded"),
        pytest.param(
            {"content": b'{"key": "community-key"}', "headers": {"content-type": "text/plain"}},
            id="not-json-content-type",
        ),
    ],
)
async def test_invalid_api_key(
    client: httpx.AsyncClient, expect_code: Callable[[int], int], send: dict[str, Any]
) -> None:
    answer = await client.post("v3/finetune_list", **send)
    assert answer.status_code == expect_code(401)
    same_shape(answer, INVALID_KEY)


async def test_community_key_on_enterprise_endpoint_is_invalid(
    client: httpx.AsyncClient, expect_code: Callable[[int], int]
) -> None:
    answer = await client.post("v1/enterprise/system_details", json={"key": COMMUNITY_KEY})
    assert answer.status_code == expect_code(401)
    same_shape(answer, INVALID_KEY)


async def test_content_type_with_charset_is_json(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "v3/finetune_list",
        content=b'{"key": "community-key"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert answer.json()["status"] == "success"


async def test_spam_filter(
    client: httpx.AsyncClient, error_mode: str, expect_code: Callable[[int], int]
) -> None:
    body = {"key": COMMUNITY_KEY}
    assert (await client.post("v3/finetune_list", json=body)).json()["status"] == "success"
    answer = await client.post("v3/finetune_list", json=body)
    assert answer.status_code == expect_code(429)
    if error_mode == "modern":
        same_shape(answer, SPAM | {"retry_after": answer.json()["retry_after"]})
        assert 1 <= answer.json()["retry_after"] <= 30
        assert answer.headers["retry-after"] == str(answer.json()["retry_after"])
    else:
        same_shape(answer, SPAM)


async def test_queue_limit(
    client: httpx.AsyncClient, state: EmulatorState, expect_code: Callable[[int], int]
) -> None:
    for number in range(5):
        ok = await client.post("v3/load_model", json=LOAD_BODY | {"model_id": f"m{number}"})
        assert ok.json()["status"] == "success"
    answer = await client.post("v3/load_model", json=LOAD_BODY | {"model_id": "m5"})
    assert answer.status_code == expect_code(429)
    documented = {
        "status": "error",
        "message": "Rate limit exceeded. Maximum 5 queued requests allowed.",
        "retry_after": 30,
    }
    same_shape(answer, documented)
    assert '"retry_after":30' in answer.text
    assert "m5" not in state.accounts["studio"].models


async def test_failed_try_again(
    client: httpx.AsyncClient, expect_code: Callable[[int], int]
) -> None:
    await client.post(control(client, "faults"), json={"failed_rate": 1})
    answer = await client.post("v3/finetune_list", json={"key": COMMUNITY_KEY})
    assert answer.status_code == expect_code(500)
    same_shape(answer, {"status": "failed", "id": "", "message": "Failed, Try Again", "output": ""})


async def test_unknown_path_is_404_in_both_modes(client: httpx.AsyncClient) -> None:
    answer = await client.post("v3/nope", json={"key": COMMUNITY_KEY})
    assert answer.status_code == 404
    same_shape(answer, assumptions.UNKNOWN_PATH)


@pytest.mark.parametrize(
    ("emulated", "time_scale", "told"),
    [
        (20.2, 1.0, 21),  # documented: whole seconds, rounded up
        (0.2, 1.0, 1),  # never 0: "retry after 0" would invite a burst
        (30.0, 60.0, 0.5),  # under a faster clock: the client's real seconds
        (12.3456, 60.0, 0.206),  # to the millisecond, rounded up
        (0.0001, 60.0, 0.001),
    ],
)
def test_retry_after_counts_the_clients_real_seconds(
    emulated: float, time_scale: float, told: float
) -> None:
    told_now = replies.real_seconds(emulated, time_scale)
    assert told_now == told
    assert isinstance(told_now, int) == (time_scale == 1)


async def test_a_load_refused_by_the_queue_limit_does_not_start_a_spam_window(
    error_mode: str, expect_code: Callable[[int], int]
) -> None:
    """The retry of a refused load, once a place is free, is taken (api-spec §7.7)."""
    app = create_app(make_config(error_mode=error_mode, load_seconds=10.0))
    async with in_process(app) as client:
        for number in range(5):
            await client.post("v3/load_model", json=LOAD_BODY | {"model_id": f"m{number}"})
        sixth = LOAD_BODY | {"model_id": "m5"}
        refused = await client.post("v3/load_model", json=sixth)
        assert refused.status_code == expect_code(429)
        assert "queued requests" in refused.json()["message"]
        await advance(client, 11.0)  # the first five are ready, well inside the 30 s window
        again = await client.post("v3/load_model", json=sixth)
        assert again.json()["status"] == "success", again.json()
        spam = await client.post("v3/load_model", json=sixth)  # and now it is taken: a window
        assert "spam filter" in spam.json()["tips"]
