"""Helpers of the end-to-end tests: a real emulator, manifests on disk, the CLI in-process.

Each test gets its own emulator (a uvicorn server in a thread on a free port, 1 emulated minute
= 1 real second) with four accounts whose keys are random per test, the keys in the environment
variables the manifests name, and a :class:`World` that runs ``reconciler`` commands through
:func:`reconciler.cli.run` (the same boundary as the console script) and reads the emulator's
control surface. Every output a test captures is checked for the keys when the test ends.

Between two commands the emulated clock moves 30 s forward (one spam window, half a real
second saved): separate runs are separate clients, and the emulator would rightly refuse a
listing repeated inside its spam window.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.api.kinds import ApiKind
from reconciler.cli import run
from reconciler.emulator.config import AccountConfig, EmulatorConfig
from reconciler.emulator.server import EmulatorHandle

#: Emulated seconds per real second: a 60 s load takes 1 s, the 30 s spam window 0.5 s.
TIME_SCALE = 60.0
#: The API's spam window in emulated seconds.
SPAM_WINDOW = 30.0
#: The client's spam window in real seconds, a little above the emulator's.
CLIENT_SPAM_WINDOW = 0.55
POLL_INTERVAL = 0.6
APPLY_TIMEOUT = 30.0
EIGHT_DAYS = 8 * 86_400

#: Emulator accounts: name → (api, queue_limit, key variable).
ACCOUNTS: Mapping[str, tuple[ApiKind, int, str]] = {
    "studio": (ApiKind.COMMUNITY, 5, "MODELSLAB_E2E_KEY_STUDIO"),
    "farm": (ApiKind.ENTERPRISE, 5, "MODELSLAB_E2E_KEY_FARM"),
    "narrow": (ApiKind.COMMUNITY, 2, "MODELSLAB_E2E_KEY_NARROW"),
    "narrow-farm": (ApiKind.ENTERPRISE, 2, "MODELSLAB_E2E_KEY_NARROW_FARM"),
}

LOAD_ENDPOINTS = ("v3/load_model", "v4/dreambooth/model_reload", "v1/enterprise/load_model")
MUTATING_ENDPOINTS = (*LOAD_ENDPOINTS, "v1/enterprise/delete_model")


def community_model(model_id: str, url: str | None = None, **extra: Any) -> dict[str, Any]:
    """A community model entry of a manifest."""
    return {
        "model_id": model_id,
        "url": url or f"org/{model_id}",
        "model_format": "diffusers",
        "model_category": "stable_diffusion",
        **extra,
    }


def enterprise_model(model_id: str, url: str | None = None, **extra: Any) -> dict[str, Any]:
    """An enterprise model entry of a manifest."""
    return {
        "model_id": model_id,
        "url": url or f"org/{model_id}",
        "model_type": "huggingface",
        **extra,
    }


def absent(model_id: str, **extra: Any) -> dict[str, Any]:
    """An ``ensure: absent`` entry."""
    return {"model_id": model_id, "ensure": "absent", **extra}


def write_manifest(directory: Path, name: str, yaml_text: str) -> Path:
    """Write one manifest file and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml_text, encoding="utf-8")
    return path


@dataclass
class Result:
    """What one command did: its exit code and everything it printed."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout as JSON (``-o json``)."""
        return json.loads(self.out)

    @property
    def text(self) -> str:
        """stdout and stderr together."""
        return self.out + self.err


@dataclass
class World:
    """One emulator, one manifest folder and one ledger; commands and control calls."""

    emulator: EmulatorHandle
    root: Path
    capsys: pytest.CaptureFixture[str]
    keys: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    @property
    def manifests(self) -> Path:
        """The folder of the manifests."""
        return self.root / "manifests"

    @property
    def ledger(self) -> Path:
        """The ledger folder every command of the test uses."""
        return self.root / "ledger"

    @property
    def global_args(self) -> list[str]:
        """The options before the command: the emulator's URL and fast client settings."""
        return [
            "--api-base",
            self.emulator.base_url,
            "--spam-window",
            str(CLIENT_SPAM_WINDOW),
            "--request-timeout",
            "5",
        ]

    # -- manifests ----------------------------------------------------------------------------

    def manifest(self, account: str, models: Sequence[dict[str, Any]], **options: Any) -> Path:
        """Write ``<account>.yaml`` declaring ``models`` on an emulator account."""
        api, queue_limit, key_env = ACCOUNTS[account]
        document = {
            "version": 1,
            "account": account,
            "api": api.value,
            "key_env": key_env,
            "queue_limit": queue_limit,
            **options,
            "models": list(models),
        }
        return write_manifest(self.manifests, f"{account}.yaml", yaml.safe_dump(document))

    # -- commands -------------------------------------------------------------------------------

    def cli(self, *args: str) -> Result:
        """Run ``reconciler GLOBAL-OPTIONS ARGS`` in-process after one quiet spam window."""
        self.advance(SPAM_WINDOW)
        self.capsys.readouterr()
        code = run([*self.global_args, *args])
        captured = self.capsys.readouterr()
        self.outputs.extend((captured.out, captured.err))
        return Result(code, captured.out, captured.err)

    def plan(self, *extra: str) -> Result:
        """``plan MANIFESTS --ledger LEDGER EXTRA``."""
        return self.cli("plan", str(self.manifests), "--ledger", str(self.ledger), *extra)

    def apply(self, *extra: str, target: Sequence[str] = ()) -> Result:
        """``apply [TARGET] MANIFESTS`` with a fast poll, a 30 s timeout and the ledger."""
        return self.cli(
            "apply",
            *target,
            str(self.manifests),
            "--poll-interval",
            str(POLL_INTERVAL),
            "--timeout",
            str(APPLY_TIMEOUT),
            "--ledger",
            str(self.ledger),
            *extra,
        )

    def status(self, *extra: str) -> Result:
        """``status MANIFESTS --ledger LEDGER EXTRA``."""
        return self.cli("status", str(self.manifests), "--ledger", str(self.ledger), *extra)

    # -- the emulator's control surface -------------------------------------------------------

    def control(self, name: str, body: dict[str, Any] | None = None) -> Any:
        """GET (no body) or POST a control route; its JSON answer."""
        url = self.emulator.control_url + name
        with httpx.Client(timeout=10) as http:
            answer = http.get(url) if body is None else http.post(url, json=body)
        answer.raise_for_status()
        return answer.json()

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward."""
        self.control("clock", {"advance_seconds": seconds})

    def faults(self, **settings: Any) -> None:
        """Set the emulator's faults."""
        self.control("faults", settings)

    def models(self, account: str) -> dict[str, dict[str, Any]]:
        """The emulator's records of one account's models, by id (from ``GET state``)."""
        state = self.control("state")
        found = next(a for a in state["accounts"] if a["name"] == account)
        return {m["model_id"]: m for m in found["models"]}

    def statuses(self, account: str) -> dict[str, str]:
        """model id → the emulator's status of it."""
        return {model_id: m["status"] for model_id, m in self.models(account).items()}

    def requests(self) -> dict[str, Any]:
        """The emulator's request counters (``GET requests``)."""
        counters: dict[str, Any] = self.control("requests")
        return counters

    def count(self, endpoint: str, account: str | None = None) -> int:
        """How many requests reached ``endpoint`` (of ``account``, if given)."""
        counters = self.requests()
        if account is None:
            return int(counters["endpoints"].get(endpoint, 0))
        return int(counters["accounts"].get(account, {}).get(endpoint, 0))

    def mutations(self) -> dict[str, int]:
        """Requests that change an account, by endpoint (zeros left out)."""
        endpoints = self.requests()["endpoints"]
        return {e: n for e in MUTATING_ENDPOINTS if (n := endpoints.get(e, 0))}

    def seed(
        self, account: str, model_id: str, url: str | None = None, status: str = "model_ready"
    ) -> None:
        """Put a model on an account as if someone else had loaded it."""
        self.emulator.state.seed_model(account, model_id, {"url": url or f"org/{model_id}"}, status)

    def assert_no_key_in_outputs(self) -> None:
        """No captured output ever shows an API key."""
        for text in self.outputs:
            for key in self.keys.values():
                assert key not in text


def changes(plan_document: Mapping[str, Any], account: str) -> dict[str, dict[str, Any]]:
    """model id → change, of one account of a ``plan -o json`` document."""
    found = next(a for a in plan_document["accounts"] if a["account"] == account)
    return {c["model_id"]: c for c in found["changes"]}


def actions(plan_document: Mapping[str, Any], account: str) -> dict[str, str]:
    """model id → action, of one account of a ``plan -o json`` document."""
    return {model_id: c["action"] for model_id, c in changes(plan_document, account).items()}


def items(report: Mapping[str, Any], account: str) -> dict[str, dict[str, Any]]:
    """model id → item, of one account of an ``apply -o json`` report."""
    found = next(a for a in report["accounts"] if a["account"] == account)
    return {i["model_id"]: i for i in found["items"]}


def account_report(report: Mapping[str, Any], account: str) -> dict[str, Any]:
    """One account of an ``apply -o json`` report."""
    found: dict[str, Any] = next(a for a in report["accounts"] if a["account"] == account)
    return found


def accounts_with_keys(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], EmulatorConfig]:
    """Fresh keys for the :data:`ACCOUNTS` in the environment (and no reconciler settings
    from the caller's), and the emulator config that knows them."""
    keys = {name: f"sk-{name}-{secrets.token_hex(12)}" for name in ACCOUNTS}
    for name, (_, _, key_env) in ACCOUNTS.items():
        monkeypatch.setenv(key_env, keys[name])
    for name in ("RECONCILER_API_BASE", "RECONCILER_LEDGER", "RECONCILER_SPAM_WINDOW"):
        monkeypatch.delenv(name, raising=False)
    config = EmulatorConfig(
        accounts=[
            AccountConfig(name=name, key=keys[name], api=api, queue_limit=limit)
            for name, (api, limit, _) in ACCOUNTS.items()
        ],
        time_scale=TIME_SCALE,
        seed=7,
    )
    return keys, config
