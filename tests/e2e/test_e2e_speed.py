"""The fast path from process start to the first request, end to end (issue 11).

What a command imports is pinned through the real entry point with ``-X importtime``; the
global concurrency cap through the CLI against the emulator. How fast any of it is, is
measured in ``benchmarks/``, never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import pytest

from reconciler.api.client import (
    MAX_CONCURRENCY,
    MIN_CONCURRENCY,
    ApiClient,
    ClientSettings,
    concurrency_for,
)
from reconciler.api.secret import ApiKey
from reconciler.api.transport import AiohttpWire
from reconciler.cli import build_run

from .e2e_support import (
    ACCOUNTS,
    APPLY_TIMEOUT,
    POLL_INTERVAL,
    SPAM_WINDOW,
    World,
    community_model,
    enterprise_model,
)

#: Modules that ``plan`` must not import: the emulator and its server, the live display, the
#: spec differ (only replaces need it) and httpx's own command line.
HEAVY = ("reconciler.emulator", "starlette", "uvicorn", "rich", "pygments", "deepdiff")


def test_plan_imports_no_emulator_server_or_live_display(world: World) -> None:
    world.manifest("studio", [community_model("analog")])
    world.manifest("farm", [enterprise_model("canny")])
    world.advance(SPAM_WINDOW)
    result = subprocess.run(
        [
            *(sys.executable, "-X", "importtime", "-m", "reconciler", *world.global_args),
            *("plan", str(world.manifests), "--ledger", str(world.ledger), "--detailed-exitcode"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "+ load" in result.stdout
    imported = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "reconciler.engine" in imported  # the report is there: the check below means something
    assert not {m for m in imported if m.split(".")[0] in HEAVY or m.startswith(HEAVY)}


def test_max_concurrency_one_still_converges(world: World) -> None:
    world.manifest("studio", [community_model(f"m{i}") for i in range(3)])
    result = world.cli(
        "--max-concurrency",
        "1",
        "apply",
        str(world.manifests),
        "--ledger",
        str(world.ledger),
        "--poll-interval",
        str(POLL_INTERVAL),
        "--timeout",
        str(APPLY_TIMEOUT),
    )
    assert result.code == 0, result.text
    assert set(world.statuses("studio").values()) == {"model_ready"}


@pytest.mark.parametrize(
    ("limits", "expected"),
    [((), MIN_CONCURRENCY), ((5,), MIN_CONCURRENCY), ((5,) * 100, 500), ((15,) * 100, 512)],
)
def test_the_default_cap_grows_with_the_accounts(limits: tuple[int, ...], expected: int) -> None:
    assert concurrency_for(limits) == expected
    assert MIN_CONCURRENCY <= concurrency_for(limits) <= MAX_CONCURRENCY


def test_the_cap_is_set_from_the_flag_or_the_accounts(world: World) -> None:
    world.manifest("studio", [community_model("a")])
    world.manifest("farm", [enterprise_model("b")])
    obj = {
        "api_base": None,
        "allowed_api_bases": (),
        "key_env_pattern": None,
        "spam_window": 0.05,
        "request_timeout": 5.0,
        "unreachable_timeout": 15.0,
        "debug": False,
    }
    paths = [str(world.manifests)]
    auto, _ = build_run(obj | {"max_concurrency": None}, paths, (), None, True)
    assert auto.settings.max_concurrency == MIN_CONCURRENCY
    flagged, _ = build_run(obj | {"max_concurrency": 3}, paths, (), None, True)
    assert flagged.settings.max_concurrency == 3


def test_every_account_reads_over_one_aiohttp_pool_closed_at_the_end(world: World) -> None:
    async def read_two() -> tuple[list[str], bool]:
        async with ApiClient(ClientSettings(spam_window=0.0)) as api:
            transport = api._wire
            assert isinstance(transport, AiohttpWire)
            read = []
            for name in ("studio", "farm"):
                api_kind, limit, key_env = ACCOUNTS[name]
                key = ApiKey(os.environ[key_env])
                account = api.account(name, api_kind, key, world.emulator.base_url, limit)
                read.append(sorted((await account.read_live()).models))
            session = transport._session
            assert session is not None and not session.closed
        return read[0], session.closed

    world.seed("studio", "seeded")
    models, closed = anyio.run(read_two)
    assert models and closed
