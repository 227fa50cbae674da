"""The work a benchmark gives every tool: a fleet of accounts, some models live, some to load.

:func:`make_fleet` decides, from the sizes alone, which models are already ready on the
emulator and which are missing (the changes, spread round-robin over the accounts); the
writers put the same fleet into the three forms the tools read: manifests (``reconciler``), a
seed for :mod:`benchmarks.emulator_main`, and a JSON work list (the user scripts).
:class:`EmulatorProcess` runs the seeded emulator in its own process.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

COMMUNITY_URL = "wavymulder/Analog-Diffusion"
ENTERPRISE_URL = "runwayml/stable-diffusion-v1-5"


@dataclass(frozen=True)
class Account:
    """One account of the fleet: its models and which of them are to be loaded."""

    index: int
    api: str
    queue_limit: int
    models: tuple[str, ...]
    changed: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        return f"acct-{self.index:04d}"

    @property
    def key_env(self) -> str:
        return f"MODELSLAB_BENCH_{self.index:04d}"

    @property
    def key(self) -> str:
        return f"bench-key-{self.index:04d}"

    def spec(self, model_id: str) -> dict[str, str]:
        """The model's load fields, as a manifest entry and a request body both carry them."""
        if self.api == "community":
            return {
                "url": COMMUNITY_URL,
                "model_format": "diffusers",
                "model_category": "stable_diffusion",
                "model_visibility": "private",
                "model_name": model_id,
            }
        return {"url": ENTERPRISE_URL, "model_type": "huggingface"}


def make_fleet(
    accounts: int, models: int, changes: int, *, queue_limit: int = 5, api: str = "mixed"
) -> list[Account]:
    """``accounts`` × ``models``, with ``changes`` of them missing, round-robin over accounts.

    ``api``: ``community``, ``enterprise`` or ``mixed`` (even accounts community).
    """
    if changes > accounts * models:
        raise ValueError("more changes than models")
    per = [changes // accounts + (1 if i < changes % accounts else 0) for i in range(accounts)]
    fleet = []
    for i in range(accounts):
        kind = api if api != "mixed" else ("community" if i % 2 == 0 else "enterprise")
        ids = tuple(f"model-{i:04d}-{m:06d}" for m in range(models))
        fleet.append(Account(i, kind, queue_limit, ids, frozenset(ids[models - per[i] :])))
    return fleet


def write_manifests(fleet: list[Account], folder: Path) -> None:
    """One manifest per account; every model declared present."""
    folder.mkdir(parents=True, exist_ok=True)
    for account in fleet:
        lines = [
            "version: 1",
            f"account: {account.name}",
            f"api: {account.api}",
            f"key_env: {account.key_env}",
            f"queue_limit: {account.queue_limit}",
            "models:",
        ]
        for model_id in account.models:
            fields = account.spec(model_id)
            lines.append(f"  - model_id: {model_id}")
            lines += [f"    {name}: {value}" for name, value in fields.items()]
        (folder / f"{account.name}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_seed(fleet: list[Account], path: Path, settings: dict[str, Any]) -> None:
    """The emulator's seed: accounts, settings, and the unchanged models already ready."""
    accounts = [
        {
            "name": a.name,
            "key": a.key,
            "api": a.api,
            "queue_limit": a.queue_limit,
            "ready": [{"model_id": m, "spec": a.spec(m)} for m in a.models if m not in a.changed],
        }
        for a in fleet
    ]
    path.write_text(json.dumps({"settings": settings, "accounts": accounts}), encoding="utf-8")


def write_work(fleet: list[Account], path: Path) -> None:
    """What the user scripts read: per account its key variable, API and models to load."""
    work = [
        {
            "key_env": a.key_env,
            "api": a.api,
            "models": [{"model_id": m, **a.spec(m)} for m in a.models if m in a.changed],
        }
        for a in fleet
    ]
    path.write_text(json.dumps(work, indent=1), encoding="utf-8")


def keys(fleet: list[Account]) -> dict[str, str]:
    """The environment every tool runs with: each account's key under its variable."""
    return {a.key_env: a.key for a in fleet}


class EmulatorProcess:
    """``python -m benchmarks.emulator_main SEED`` as a child process, stopped on exit."""

    def __init__(self, seed: Path, start_timeout: float = 120.0) -> None:
        self.seed = seed
        self.start_timeout = start_timeout
        self.base_url = ""
        self.root = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> EmulatorProcess:
        # BENCH_EMULATOR_WRAP="pyinstrument -o F" runs the emulator under a profiler (which
        # must run the module in-process, so that SIGTERM still stops the server cleanly).
        wrapper = shlex.split(os.environ.get("BENCH_EMULATOR_WRAP", "")) or [sys.executable]
        self._process = subprocess.Popen(
            [*wrapper, "-m", "benchmarks.emulator_main", str(self.seed)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        assert self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(self.start_timeout):
                self.__exit__()
                raise RuntimeError("the emulator did not start")
        line = self._process.stdout.readline().strip()
        if not line.startswith("Emulator listening on "):
            self.__exit__()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.base_url = line.removeprefix("Emulator listening on ")
        self.root = self.base_url.removesuffix("api/")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def cpu_seconds(self) -> float:
        """The emulator process's CPU time so far (Linux ``/proc``; 0 elsewhere)."""
        if self._process is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def get(self, path: str) -> Any:
        """``GET`` a control route (``_emulator/state``, ``_bench/timeline``) as JSON."""
        return httpx.get(self.root + path, timeout=120).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """``POST`` a control route."""
        answer = httpx.post(self.root + path, json=body, timeout=60)
        answer.raise_for_status()
        return answer.json()
