"""``reconciler demo``: the main job end to end, on an emulator started in-process.

Starts the emulator on a free loopback port with a fast clock, creates the accounts of the
manifests with generated keys, seeds a retired model and a hand-made one, then runs plan and
apply with progress, moves the clock 8 days forward so the community models are evicted,
shows the drift, repairs it, and prints a closing summary. Nothing leaves loopback; the keys
are generated here and never printed; the ledger lives in a temporary folder.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import httpx

from reconciler.api.client import ClientSettings
from reconciler.apply import ApplyOptions
from reconciler.core.report import ApplyReport
from reconciler.emulator.config import AccountConfig, EmulatorConfig
from reconciler.emulator.server import running_emulator
from reconciler.emulator.state import EmulatorState
from reconciler.engine import ApiAccess, PlanResult, apply_with_ledger
from reconciler.ledger.folder import FolderLedger
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.models import LoadedAccount
from reconciler.render.plan_text import write_plan_text
from reconciler.render.progress import make_progress
from reconciler.render.report import write_report_text

#: Emulated seconds per real second: a 60 s load takes one second, a reload two.
DEMO_TIME_SCALE = 60.0
#: The API's spam window, in emulated seconds (api-spec §7.7).
SPAM_WINDOW = 30.0
EIGHT_DAYS = 8 * 86_400


def run_demo(stream: TextIO, paths: Sequence[str], *, time_scale: float = DEMO_TIME_SCALE) -> int:
    """Run the demo, writing its story to ``stream``; 0 when every account converged twice."""
    started = time.monotonic()
    accounts = tuple(_on_emulator(a) for a in load_manifests(paths))
    keys = {a.spec.key_env: f"demo-{secrets.token_urlsafe(12)}" for a in accounts}
    emulator_config = EmulatorConfig(
        accounts=[
            AccountConfig(
                name=a.name, key=keys[a.spec.key_env], api=a.api, queue_limit=a.spec.queue_limit
            )
            for a in accounts
        ],
        time_scale=time_scale,
    )
    settings, options = fast_clock_settings(time_scale)
    with running_emulator(emulator_config) as emulator, tempfile.TemporaryDirectory() as folder:
        _say(
            stream,
            "reconciler demo: the main job against an in-process emulator "
            f"(loopback only; the emulated clock runs {time_scale:g} times faster than real time)",
        )
        _say(stream, f"emulator: {emulator.base_url}")
        _say(stream, "accounts: " + ", ".join(f"{a.name} ({a.api})" for a in accounts))
        _seed(emulator.app.state.emulator, accounts, stream)
        config = ApiAccess(accounts, keys, emulator.base_url, settings)
        ledger = FolderLedger(Path(folder) / "ledger")
        first = _apply(stream, "1. plan and apply the manifests", config, ledger, options)
        _advance(emulator.control_url, EIGHT_DAYS)
        _say(
            stream,
            "\n== 2. eight days later ==\nthe clock moved 8 days: community models "
            "idle for more than 7 days were evicted from the inference server",
        )
        second = _apply(stream, "3. repair the drift", config, ledger, options)
        requests = _request_count(emulator.control_url)
    _summary(stream, (first, second), requests, time.monotonic() - started)
    return 0 if first.ok() and second.ok() else 1


def fast_clock_settings(time_scale: float) -> tuple[ClientSettings, ApplyOptions]:
    """Client settings and apply options paced for an emulator whose clock runs
    ``time_scale`` times faster than real time: the spam window shrinks with it."""
    window = SPAM_WINDOW / time_scale
    settings = ClientSettings(
        request_timeout=10.0,
        spam_window=window,
        retry_wait_initial=window,
        retry_wait_max=4 * window,
        deadline=60.0,
    )
    return settings, ApplyOptions(wait=True, timeout=120.0, poll_interval=window * 1.2)


def _on_emulator(account: LoadedAccount) -> LoadedAccount:
    """The account with any manifest api_base dropped, so nothing can reach the real API."""
    spec = account.spec.model_copy(update={"api_base": None})
    return LoadedAccount(spec, account.file, account.line, account.model_lines)


def _seed(state: EmulatorState, accounts: Sequence[LoadedAccount], stream: TextIO) -> None:
    """A retired model on the enterprise server and a hand-made one on a community account.

    The retired one goes where the API can delete it (the demo shows the delete), the
    hand-made one where it cannot (the demo shows it reported and kept).
    """
    seed = state.seed_model
    for account in accounts:
        absent = [m.model_id for m in account.desired() if m.ensure == "absent"]
        if account.api.caps.can_delete and absent:
            seed(account.name, absent[0], {"url": "runwayml/stable-diffusion-v1-5"})
            _say(stream, f"seeded {account.name}/{absent[0]}: retired, declared ensure: absent")
    community = next((a for a in accounts if not a.api.caps.can_delete), None)
    if community is not None:
        seed(community.name, "hand-made-lora", {"url": "someone/their-lora"})
        _say(stream, f"seeded {community.name}/hand-made-lora: loaded by hand, not declared")


def _apply(
    stream: TextIO, title: str, config: ApiAccess, ledger: FolderLedger, options: ApplyOptions
) -> ApplyReport:
    _say(stream, f"\n== {title} ==")

    def show_plan(run: PlanResult) -> None:
        write_plan_text(run.plan, stream)
        _say(stream, "")

    report = apply_with_ledger(
        config, ledger, options, on_plan=show_plan, progress=make_progress(stream)
    )
    write_report_text(report, stream)
    return report


def _advance(control_url: str, seconds: int) -> None:
    response = httpx.post(f"{control_url}clock", json={"advance_seconds": seconds}, timeout=10)
    response.raise_for_status()


def _request_count(control_url: str) -> int:
    response = httpx.get(f"{control_url}requests", timeout=10)
    response.raise_for_status()
    counts = response.json()
    return int(counts.get("total", 0)) if isinstance(counts, dict) else 0


def _summary(stream: TextIO, reports: Sequence[ApplyReport], requests: int, elapsed: float) -> None:
    totals: dict[str, int] = {}
    for report in reports:
        for account in report.accounts:
            for item in account.items:
                if item.outcome.value == "done":
                    totals[item.action.value] = totals.get(item.action.value, 0) + 1
    converged = all(r.ok() for r in reports)
    done = ", ".join(f"{n} {action}" for action, n in sorted(totals.items())) or "nothing"
    _say(stream, "\n== summary ==")
    _say(
        stream,
        f"{'every account converged' if converged else 'NOT converged'}; done: {done}; "
        f"{requests} API requests; {elapsed:.1f} s",
    )


def _say(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()
