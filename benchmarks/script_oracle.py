"""The floor: a client that is told how long a load takes, and does nothing else.

    python benchmarks/script_oracle.py --api-base URL --work work.json --poll 0.5 --load 1.0

Nobody could use it: it is *told* the load time (``--load``) where apply must learn it, and it
reads no manifest, makes no plan, keeps no ledger, checks no answer. It lists every account
once, as a plan does, and sends nothing until every listing has answered (apply must not act
before the whole plan is made). Then each account sends a queue's worth of loads at once,
lists again when they can be done (a load's time after their answers came, and not within the
spam window), sends the next queue's worth, and so on; the last listing is the one that would
see the last loads ready. It runs on asyncio and aiohttp, as apply does, on the same machine.

So its phase is what the client's event loop, HTTP and the emulator cost on this machine
against the schedule's lower bound, and what apply adds beyond it is apply's own work: the
manifests, the plan, learning the load time, the ledger, the checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
from script_sequential import LOAD

#: A listing as apply makes it (a community account's in two calls).
LISTING = {
    "community": ("v3/finetune_list", "v4/dreambooth/model_list"),
    "enterprise": ("v1/enterprise/get_all_models",),
}


class Oracle:
    """One run over every account of the work, with the times it is told."""

    def __init__(self, http: aiohttp.ClientSession, args: argparse.Namespace, accounts: int):
        self.http, self.base = http, args.api_base
        self.load, self.window, self.queue = args.load, args.poll, args.queue
        self.unlisted = accounts
        self.planned = asyncio.Event()

    async def post(self, path: str, body: dict[str, Any]) -> None:
        async with self.http.post(self.base + path, json=body) as answer:
            await answer.read()

    async def listing(self, api: str, key: str) -> float:
        """List the account (both calls of a community listing at once); when it started."""
        started = time.monotonic()
        await asyncio.gather(*(self.post(path, {"key": key}) for path in LISTING[api]))
        return started

    async def account(self, account: dict[str, Any]) -> None:
        key, api, models = os.environ[account["key_env"]], account["api"], account["models"]
        listed = await self.listing(api, key)
        self.unlisted -= 1
        if not self.unlisted:
            self.planned.set()
        await self.planned.wait()
        for start in range(0, len(models), self.queue):
            wave = models[start : start + self.queue]
            await asyncio.gather(*(self.post(LOAD[api], {"key": key, **m}) for m in wave))
            done = time.monotonic() + self.load  # they started before their answers came
            await asyncio.sleep(max(done, listed + self.window) - time.monotonic())
            listed = await self.listing(api, key)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--poll", type=float, default=30.0, help="the spam window, seconds")
    parser.add_argument("--load", type=float, required=True, help="how long a load takes")
    parser.add_argument("--queue", type=int, default=5, help="the accounts' queue limit")
    args = parser.parse_args()
    work = json.loads(args.work.read_text())
    connector = aiohttp.TCPConnector(limit=0)  # no cap: the accounts' queues are the limit
    async with aiohttp.ClientSession(connector=connector) as http:
        oracle = Oracle(http, args, len(work))
        await asyncio.gather(*(oracle.account(account) for account in work))


if __name__ == "__main__":
    asyncio.run(main())
