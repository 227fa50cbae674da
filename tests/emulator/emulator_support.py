"""Helpers shared by the emulator's tests: configs, in-process clients, common requests."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from reconciler.emulator import AccountConfig, EmulatorConfig

COMMUNITY_KEY = "community-key"
ENTERPRISE_KEY = "enterprise-key"
#: A fixed emulated start: 2023-01-25 11:52:22 UTC, the day of the docs' get_all_models example.
START = 1674647542.0

LOAD_BODY: dict[str, Any] = {
    "key": COMMUNITY_KEY,
    "url": "wavymulder/Analog-Diffusion",
    "model_id": "analog-diffusion",
    "model_format": "diffusers",
    "model_category": "stable_diffusion",
    "model_visibility": "private",
    "model_name": "Analog Diffusion",
}
ENTERPRISE_LOAD_BODY: dict[str, Any] = {
    "key": ENTERPRISE_KEY,
    "url": "wavymulder/Analog-Diffusion",
    "model_id": "hf-model",
    "model_type": "huggingface",
}


def make_config(**overrides: Any) -> EmulatorConfig:
    """A config with one community and one enterprise account and a fixed start time."""
    accounts = [
        AccountConfig(name="studio", key=COMMUNITY_KEY, api="community"),
        AccountConfig(name="dedicated", key=ENTERPRISE_KEY, api="enterprise"),
    ]
    values: dict[str, Any] = {"accounts": accounts, "start_time": START, "seed": 1}
    return EmulatorConfig(**(values | overrides))


def in_process(app: Starlette) -> httpx.AsyncClient:
    """An httpx client talking to ``app`` in-process, based at the API's ``/api/``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://emulator/api/"
    )


def control(http: httpx.AsyncClient, name: str) -> httpx.URL:
    """The URL of a control route (``/_emulator/NAME``) beside the client's ``/api/`` base."""
    return http.base_url.join(f"../_emulator/{name}")


async def advance(http: httpx.AsyncClient, seconds: float) -> None:
    """Move the emulated clock forward through the control surface."""
    answer = await http.post(control(http, "clock"), json={"advance_seconds": seconds})
    assert answer.status_code == 200


async def statuses(http: httpx.AsyncClient, key: str = COMMUNITY_KEY) -> dict[str, str]:
    """The account's own models in ``model_list``, id → status (the catalogue left out)."""
    answer = await http.post("v4/dreambooth/model_list", json={"key": key, "nonce": _nonce()})
    catalogue = {"midjourney", "anything-v3", "wifu-diffusion"}
    return {m["model_id"]: m["status"] for m in answer.json() if m["model_id"] not in catalogue}


async def owned(http: httpx.AsyncClient, key: str = COMMUNITY_KEY) -> list[str]:
    """The ids ``finetune_list`` returns."""
    answer = await http.post("v3/finetune_list", json={"key": key, "nonce": _nonce()})
    ids: list[str] = answer.json()["data"]
    return ids


_counter = iter(range(10**9))


def _nonce() -> int:
    """A distinct extra field, so that listing twice is not caught by the spam filter."""
    return next(_counter)
