"""End to end through the real entry point (``python -m reconciler`` in a subprocess), the
demo, and the promise that API keys never show in any output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .e2e_support import (
    APPLY_TIMEOUT,
    POLL_INTERVAL,
    SPAM_WINDOW,
    World,
    account_report,
    community_model,
    enterprise_model,
)

REPO = Path(__file__).resolve().parents[2]
READY = "model_ready"


def reconciler(world: World, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m reconciler GLOBAL-OPTIONS ARGS`` with the keys in its environment."""
    world.advance(SPAM_WINDOW)  # a new process is a new client: one quiet spam window first
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *world.global_args, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),  # the world's keys were set with monkeypatch
        check=False,
    )


def assert_no_keys(world: World, *results: subprocess.CompletedProcess[str]) -> None:
    for result in results:
        for key in world.keys.values():
            assert key not in result.stdout
            assert key not in result.stderr


def test_python_m_reconciler_plans_applies_and_converges(world: World) -> None:
    world.manifest("studio", [community_model("analog")])
    world.manifest("farm", [enterprise_model("canny")])
    paths = [str(world.manifests), "--ledger", str(world.ledger)]

    before = reconciler(world, "plan", *paths, "--detailed-exitcode")
    assert before.returncode == 2, before.stdout + before.stderr
    assert "+ load" in before.stdout

    applied = reconciler(
        world,
        "apply",
        *paths,
        "--poll-interval",
        str(POLL_INTERVAL),
        "--timeout",
        str(APPLY_TIMEOUT),
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete: 2 accounts converged." in applied.stdout
    assert "load analog sent" in applied.stderr  # plain progress lines: not a terminal

    after = reconciler(world, "plan", *paths, "--detailed-exitcode")
    assert after.returncode == 0, after.stdout + after.stderr

    assert world.statuses("studio") == {"analog": READY}
    assert world.statuses("farm") == {"canny": READY}
    assert world.ledger.is_dir()
    ledger_text = "".join(p.read_text(encoding="utf-8") for p in world.ledger.iterdir())
    assert all(key not in ledger_text for key in world.keys.values())
    assert_no_keys(world, before, applied, after)


def test_a_wrong_key_is_reported_without_showing_any_key(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk-wrong-0123456789abcdef-SECRET"
    world.keys["wrong"] = wrong  # checked against every output at the end, as the others
    monkeypatch.setenv("MODELSLAB_E2E_KEY_STUDIO", wrong)
    world.manifest("studio", [community_model("analog")])
    world.manifest("farm", [enterprise_model("canny")])

    planned = world.plan()
    assert planned.code == 1, planned.text
    assert "studio" in planned.err
    assert "invalid api key" in planned.err.lower()

    applied = world.apply("-o", "json")
    assert applied.code == 1, applied.text
    report = applied.json()
    assert account_report(report, "studio")["converged"] is False
    assert account_report(report, "farm")["converged"] is True  # the other account goes on
    assert world.statuses("farm") == {"canny": READY}
    assert world.statuses("studio") == {}

    debug = reconciler(world, "--debug", "plan", str(world.manifests), "--no-ledger")
    assert debug.returncode == 1
    assert "Traceback" not in debug.stderr  # an expected error, not a bug
    assert_no_keys(world, debug)


def test_demo_runs_and_converges() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "== 2. eight days later ==" in output
    assert "↻ reload" in output
    assert "every account converged" in output
    # the demo's generated keys (``demo-`` + 16 url-safe characters) are never printed
    assert not re.search(r"demo-[A-Za-z0-9_-]{16}", output)
