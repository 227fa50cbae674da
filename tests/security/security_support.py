"""Helpers of the attack tests: the listener's record, command results, manifests on disk."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Listener:
    """An HTTP server on 127.0.0.1 that records every request it gets."""

    port: int
    received: list[str] = field(default_factory=list)

    def url(self, host: str = "127.0.0.1", path: str = "/api/") -> str:
        """A URL naming ``host`` on the listener's port (host names resolve to it)."""
        return f"http://{host}:{self.port}{path}"


@dataclass(frozen=True)
class Result:
    """Exit code and everything one command printed."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """stdout and stderr together."""
        return self.out + self.err


#: ``cli(*args)`` runs one reconciler command in-process.
Cli = Callable[..., Result]


def manifest(
    account: str = "studio-prod",
    key_env: str = "MODELSLAB_KEY_STUDIO_PROD",
    api_base: str | None = None,
) -> str:
    """A valid community manifest with one model, optionally with an ``api_base``."""
    base = f"api_base: {json.dumps(api_base)}\n" if api_base is not None else ""
    return (
        f"version: 1\naccount: {account}\napi: community\nkey_env: {json.dumps(key_env)}\n"
        f"{base}models:\n  - model_id: m1\n    url: org/repo\n"
        "    model_format: diffusers\n    model_category: stable_diffusion\n"
    )


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (folders created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
