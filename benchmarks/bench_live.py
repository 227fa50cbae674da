"""Benchmark of reading live state: one listing pass per account, all accounts at once.

Starts the API emulator in-process (``httpx.ASGITransport``, no socket) with ``--accounts``
accounts (default 50, alternately community and enterprise) and seeds each with ``--models``
declared models (default 100) in mixed statuses (ready, evicted, loading, failed) plus a few
undeclared ones. Then runs :func:`reconciler.engine.plan_accounts` (a :class:`ApiAccess` with
``transport=``), which reads every account concurrently and plans, and measures:

- the wall time of ``plan_accounts`` and, separately, of the ``make_plan`` part of it;
- the number of API requests, counted twice: by a counting wrapper around the transport (what
  the client sent) and by the emulator's ``GET /_emulator/requests`` (what arrived). It must be
  exactly 2 per community account (``finetune_list`` + ``model_list``) and 1 per enterprise
  account (``get_all_models``), whatever the number of models: a PASS/FAIL line says so;
- that each account's live state has the conditions that were seeded (PASS/FAIL).

Each of the ``--repeat`` runs uses a fresh emulator (the emulator's spam filter would refuse an
identical listing inside its 30 s window).

    python benchmarks/bench_live.py [--accounts A --models K] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
from _fixtures import GeneratedAccount, keys_for, model_id, print_table, write_manifests

from reconciler.core.live import Condition
from reconciler.core.plan import make_plan
from reconciler.emulator import AccountConfig, EmulatorConfig, create_app
from reconciler.engine import ApiAccess, PlanResult, plan_accounts
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.models import LoadedAccount

BASE = "http://emulator.bench/"
#: Seeded statuses, cycled per model: (emulator status, condition the listing must give).
_COMMUNITY_SEED = (
    ("model_ready", Condition.READY),
    ("model_ready", Condition.READY),
    ("model_ready", Condition.READY),
    ("evicted", Condition.EVICTED),
    ("model_loading", Condition.LOADING),
    ("model_failed", Condition.FAILED),
)
#: Enterprise listings show ready models only; loading and failed ones read as missing.
_ENTERPRISE_SEED = (
    ("model_ready", Condition.READY),
    ("model_ready", Condition.READY),
    ("model_ready", Condition.READY),
    ("model_ready", Condition.READY),
    ("model_loading", None),
    ("model_failed", None),
)
_UNDECLARED = 3


class CountingTransport(httpx.AsyncBaseTransport):
    """Passes every request on and counts them by path: what the client really sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.paths: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def seeded_emulator(
    generated: Sequence[GeneratedAccount], models: int
) -> tuple[Any, dict[str, Counter[Condition]]]:
    """A new emulator app with every account seeded; the conditions the listing must show."""
    keys = keys_for(generated)
    config = EmulatorConfig(
        accounts=[
            AccountConfig(name=g.name, key=keys[g.key_env], api=g.api, queue_limit=g.queue_limit)
            for g in generated
        ],
        time_scale=1.0,  # seeded loads (60 s) stay loading for the whole run
    )
    app = create_app(config)
    state = app.state.emulator
    expected: dict[str, Counter[Condition]] = {}
    for a, account in enumerate(generated):
        seed = _COMMUNITY_SEED if account.api == "community" else _ENTERPRISE_SEED
        conditions: Counter[Condition] = Counter()
        for m in range(models):
            status, condition = seed[m % len(seed)]
            spec = {"url": f"org/model-{m}", "model_type": "lora" if m % 10 == 7 else "huggingface"}
            state.seed_model(account.name, model_id(a, m), spec, status)
            if condition is not None:
                conditions[condition] += 1
        for u in range(_UNDECLARED):
            state.seed_model(account.name, f"hand-made-{u}", {"url": "someone/theirs"})
            conditions[Condition.READY] += 1
        expected[account.name] = conditions
    return app, expected


async def _emulator_requests(transport: httpx.AsyncBaseTransport) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as control:
        response = await control.get("_emulator/requests")
        response.raise_for_status()
        counts: dict[str, Any] = response.json()
        return counts


def one_run(
    generated: Sequence[GeneratedAccount], accounts: tuple[LoadedAccount, ...], models: int
) -> dict[str, Any]:
    """Seed a fresh emulator, run ``plan_accounts`` once, and count what it sent."""
    app, expected = seeded_emulator(generated, models)
    asgi = httpx.ASGITransport(app=app)
    counting = CountingTransport(asgi)
    config = ApiAccess(accounts, keys_for(generated), BASE + "api/", transport=counting)

    started = time.perf_counter()
    run: PlanResult = anyio.run(plan_accounts, config, None)
    wall = time.perf_counter() - started
    started = time.perf_counter()
    make_plan(accounts, run.live, None)
    plan_only = time.perf_counter() - started

    emulator = anyio.run(_emulator_requests, asgi)
    # What the listings showed, before the planner calls undeclared models unmanaged.
    seen = {name: Counter(m.condition for m in s.models.values()) for name, s in run.live.items()}
    return {
        "wall_s": wall,
        "make_plan_s": plan_only,
        "client_requests": sum(counting.paths.values()),
        "client_paths": dict(counting.paths),
        "emulator_requests": int(emulator["total"]),
        "emulator_endpoints": emulator["endpoints"],
        "failures": [f"{f.account}: {f.message}" for f in run.failures],
        "conditions_ok": seen == expected,
        "live_models": sum(len(s.models) for s in run.live.values()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the sizes, run the reads, print a table (or JSON); 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=50, help="accounts (default 50)")
    parser.add_argument("--models", type=int, default=100, help="models per account (100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each on a fresh emulator")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        generated = write_manifests(Path(tmp), args.accounts, args.models)
        accounts = load_manifests([tmp])
    runs = [one_run(generated, accounts, args.models) for _ in range(max(1, args.repeat))]

    community = sum(1 for g in generated if g.api == "community")
    enterprise = len(generated) - community
    expected_requests = 2 * community + enterprise
    requests_ok = all(
        r["client_requests"] == expected_requests == r["emulator_requests"] for r in runs
    )
    conditions_ok = all(r["conditions_ok"] and not r["failures"] for r in runs)
    walls = [r["wall_s"] for r in runs]
    plans = [r["make_plan_s"] for r in runs]
    result = {
        "accounts": len(generated),
        "community": community,
        "enterprise": enterprise,
        "models_per_account": args.models,
        "live_models": runs[0]["live_models"],
        "run_plan_s": {"best": min(walls), "median": statistics.median(walls)},
        "make_plan_s": {"best": min(plans), "median": statistics.median(plans)},
        "expected_requests": expected_requests,
        "client_requests": [r["client_requests"] for r in runs],
        "emulator_requests": [r["emulator_requests"] for r in runs],
        "emulator_endpoints": runs[0]["emulator_endpoints"],
        "requests_pass": requests_ok,
        "conditions_pass": conditions_ok,
        "failures": runs[0]["failures"],
        "repeat": len(runs),
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        best, median = result["run_plan_s"]["best"], result["run_plan_s"]["median"]
        plan_best = result["make_plan_s"]["best"]
        rows = [
            ("accounts", f"{len(generated)} ({community} community, {enterprise} enterprise)"),
            ("models per account", f"{args.models} seeded + {_UNDECLARED} undeclared"),
            ("live models read", str(result["live_models"])),
            ("plan_accounts wall", f"{best * 1000:.0f} ms (median {median * 1000:.0f} ms)"),
            ("  of which make_plan", f"{plan_best * 1000:.0f} ms"),
            ("  read_live (the rest)", f"{(best - plan_best) * 1000:.0f} ms"),
            ("expected requests", f"{expected_requests} (2 × {community} + 1 × {enterprise})"),
            ("client sent (per run)", ", ".join(map(str, result["client_requests"]))),
            ("emulator counted", ", ".join(map(str, result["emulator_requests"]))),
            ("endpoints", json.dumps(result["emulator_endpoints"])),
        ]
        print_table(rows, f"bench_live (best of {len(runs)})")
        print(f"{'PASS' if requests_ok else 'FAIL'}: requests = 2 per community + 1 per enterprise")
        print(f"{'PASS' if conditions_ok else 'FAIL'}: every account read, conditions as seeded")
    return 0 if requests_ok and conditions_ok else 1


if __name__ == "__main__":
    sys.exit(main())
