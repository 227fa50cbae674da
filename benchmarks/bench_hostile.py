"""Benchmark of the client against hostile or absent servers (issues 9 and 14).

Runs ``python -m reconciler`` in subprocesses against the loopback servers of
``tests/e2e/hostile.py`` and measures what the tests deliberately do not assert:

- the wall time of ``apply --timeout T`` when the server never answers, and when it answers
  100,000 nested ``[`` (the deadline must hold: within about 10 % of T, plus start-up);
- the wall time of ``plan`` against a closed port (the unreachable bound, 15 s by default);
- the peak RSS of ``plan`` against a 1 MB gzip body that inflates to 1 GiB;
- the time to read, mask and parse a 100k-model listing (in-process, no network).

    python benchmarks/bench_hostile.py [--timeout 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from hostile import hostile_server

from reconciler.api.responses import Where, check
from reconciler.api.secret import ApiKey

KEY_ENV = "MODELSLAB_KEY_BENCH"


def manifest_dir(base: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    document = {
        "version": 1,
        "account": "hostile",
        "api": "enterprise",
        "key_env": KEY_ENV,
        "api_base": base,
        "models": [{"model_id": "h1", "url": "org/h1", "model_type": "huggingface"}],
    }
    (folder / "hostile.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return folder


def timed_cli(*args: str) -> tuple[float, int, int]:
    """Wall seconds, exit code and peak RSS (MiB) of one ``python -m reconciler`` run."""
    env = {**os.environ, KEY_ENV: "sk-bench-0123456789abcdef"}
    env.pop("RECONCILER_API_BASE", None)
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    return elapsed, process.returncode, peak


def apply_against(mode: str, timeout: float) -> dict[str, Any]:
    with hostile_server(mode) as base:  # type: ignore[arg-type]
        folder = manifest_dir(base)
        elapsed, code, _ = timed_cli(
            "apply", str(folder), "--no-ledger", "--timeout", str(timeout), "-o", "json"
        )
    return {"case": f"apply --timeout {timeout:g} vs {mode}", "seconds": elapsed, "exit": code}


def plan_unreachable() -> dict[str, Any]:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = manifest_dir(f"http://127.0.0.1:{port}/api/")
    elapsed, code, _ = timed_cli("plan", str(folder), "--no-ledger")
    return {"case": "plan vs closed port", "seconds": elapsed, "exit": code}


def plan_bomb() -> dict[str, Any]:
    with hostile_server("bomb") as base:
        folder = manifest_dir(base)
        elapsed, code, peak = timed_cli("plan", str(folder), "--no-ledger")
    return {"case": "plan vs 1 GiB gzip bomb", "seconds": elapsed, "exit": code, "rss_mib": peak}


def parse_listing(models: int = 100_000) -> dict[str, Any]:
    key = ApiKey("sk-bench-0123456789abcdef0123456789abcdef")
    listing = [
        {"model_id": f"model-{i}", "status": "model_ready", "model_name": f"Model {i}"}
        for i in range(models)
    ]
    body = json.dumps(listing).encode()
    started = time.monotonic()
    check(httpx.Response(200), body, Where("bench", "model_list", key), 30.0)
    elapsed = time.monotonic() - started
    return {"case": f"mask+parse {models} models ({len(body) >> 20} MiB)", "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=8.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [
        apply_against("hang", args.timeout),
        apply_against("nested", args.timeout),
        plan_unreachable(),
        plan_bomb(),
        parse_listing(),
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        extra = f"  exit {row['exit']}" if "exit" in row else ""
        rss = f"  peak RSS {row['rss_mib']} MiB" if "rss_mib" in row else ""
        print(f"{row['case']:<40} {row['seconds']:7.2f} s{extra}{rss}")


if __name__ == "__main__":
    main()
