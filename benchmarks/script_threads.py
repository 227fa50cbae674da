"""The same script with 8 threads: one account per thread at a time, sequential within it.

    python benchmarks/script_threads.py --api-base http://127.0.0.1:8080/api/ --work work.json

A user's next step after the sequential script: accounts are independent, so a thread pool
works through them 8 at a time; within an account it still loads one model, polls until it is
ready, then loads the next (so it never trips the account's queue limit).
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from script_sequential import load_and_wait


def do_account(http: httpx.Client, account: dict[str, Any], pause: float) -> None:
    key = os.environ[account["key_env"]]
    for model in account["models"]:
        load_and_wait(http, account["api"], key, model, pause)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between listings")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    work = json.loads(args.work.read_text())
    limits = httpx.Limits(max_connections=args.threads)
    with (
        httpx.Client(base_url=args.api_base, timeout=60, limits=limits) as http,
        ThreadPoolExecutor(args.threads) as pool,
    ):
        for done in pool.map(lambda account: do_account(http, account, args.poll), work):
            del done


if __name__ == "__main__":
    main()
