"""What a user writes instead of reconciler: load a model, poll until it is ready, next.

    python benchmarks/script_sequential.py --api-base http://127.0.0.1:8080/api/ --work work.json

``work.json`` lists, per account, the environment variable holding its key, its API
(``community`` or ``enterprise``) and the models to load with their load fields. Listings are
spaced by ``--poll`` seconds (the API's 30 s spam window, sped up like the emulator's clock);
a refused request (spam filter, queue limit) is retried after the same pause.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

LOAD = {"community": "v3/load_model", "enterprise": "v1/enterprise/load_model"}
LIST = {"community": "v4/dreambooth/model_list", "enterprise": "v1/enterprise/get_all_models"}


def call(http: httpx.Client, path: str, body: dict[str, Any], pause: float) -> Any:
    """POST until the API takes the request (not refused by the spam filter or queue limit)."""
    while True:
        answer = http.post(path, json=body).json()
        refused = isinstance(answer, dict) and answer.get("status") == "error"
        if not refused:
            return answer
        time.sleep(pause)


def is_ready(listing: Any, model_id: str) -> bool:
    """Whether the listing shows ``model_id`` ready (or failed: stop waiting for it)."""
    if isinstance(listing, list):  # community model_list: a bare array with statuses
        return any(
            m.get("model_id") == model_id and m.get("status") in ("model_ready", "model_failed")
            for m in listing
        )
    every = [*listing.get("models", []), *listing.get("lora_models", [])]
    every += listing.get("embeddings_models", [])
    return any(m.get("model_id") == model_id for m in every)  # enterprise lists ready ones


def load_and_wait(
    http: httpx.Client, api: str, key: str, model: dict[str, Any], pause: float
) -> None:
    """Load one model, then poll the account's listing until it is ready."""
    call(http, LOAD[api], {"key": key, **model}, pause)
    while True:
        time.sleep(pause)
        if is_ready(call(http, LIST[api], {"key": key}, pause), model["model_id"]):
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between listings")
    args = parser.parse_args()
    work = json.loads(args.work.read_text())
    with httpx.Client(base_url=args.api_base, timeout=60) as http:
        for account in work:
            key = os.environ[account["key_env"]]
            for model in account["models"]:
                load_and_wait(http, account["api"], key, model, args.poll)
                print(f"{model['model_id']} ready", flush=True)


if __name__ == "__main__":
    main()
