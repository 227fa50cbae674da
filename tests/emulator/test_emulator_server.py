"""The emulator over real HTTP: in a thread (webhooks, timeouts) and as the CLI subprocess."""

from __future__ import annotations

import json
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.emulator import running_emulator

from .emulator_support import (
    COMMUNITY_KEY,
    ENTERPRISE_KEY,
    ENTERPRISE_LOAD_BODY,
    LOAD_BODY,
    make_config,
)

WAIT = 5.0


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """A tiny HTTP server in a thread; yields its URL and a queue of the JSON bodies it got."""
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            received.put(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output clean."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


def test_enterprise_webhooks_on_the_clock() -> None:
    config = make_config()
    with webhook_receiver() as (hook, received), running_emulator(config) as emulator:
        assert emulator.base_url == f"http://127.0.0.1:{emulator.port}/api/"
        assert emulator.control_url == f"http://127.0.0.1:{emulator.port}/_emulator/"
        with httpx.Client(base_url=emulator.base_url, timeout=WAIT) as http:
            ok = http.post(
                "v1/enterprise/load_model", json=ENTERPRISE_LOAD_BODY | {"webhook": hook}
            )
            assert ok.json()["status"] == "success"
            http.post(emulator.control_url + "faults", json={"fail_urls": ["bad/repo"]})
            bad = ENTERPRISE_LOAD_BODY | {"webhook": hook, "model_id": "broken", "url": "bad/repo"}
            http.post("v1/enterprise/load_model", json=bad)
            assert received.empty()
            http.post(emulator.control_url + "clock", json={"advance_seconds": 60})
            payloads = {p["model_id"]: p for p in (received.get(timeout=WAIT) for _ in range(2))}
        assert payloads == {
            "hf-model": {
                "status": "success",
                "model_id": "hf-model",
                "message": "model loaded successfully",
            },
            "broken": {"status": "failed", "model_id": "broken", "message": "model load failed"},
        }
        deadline = time.monotonic() + WAIT
        while len(emulator.state.webhook_log) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(entry["status_code"] for entry in emulator.state.webhook_log) == [204, 204]


def test_the_ticker_fires_webhooks_without_requests() -> None:
    config = make_config(load_seconds=0.2, start_time=None)
    with webhook_receiver() as (hook, received), running_emulator(config) as emulator:
        with httpx.Client(base_url=emulator.base_url, timeout=WAIT) as http:
            http.post("v1/enterprise/load_model", json=ENTERPRISE_LOAD_BODY | {"webhook": hook})
        assert received.get(timeout=WAIT)["status"] == "success"


def test_unreachable_webhook_is_logged() -> None:
    with running_emulator(make_config(load_seconds=0)) as emulator:
        with httpx.Client(base_url=emulator.base_url, timeout=WAIT) as http:
            body = ENTERPRISE_LOAD_BODY | {"webhook": "not a url"}
            http.post("v1/enterprise/load_model", json=body)
            http.get(emulator.control_url + "state")
        deadline = time.monotonic() + WAIT
        while not emulator.state.webhook_log and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "error" in emulator.state.webhook_log[0]


def test_hung_request_times_out_and_shutdown_is_quick() -> None:
    with running_emulator(make_config()) as emulator:
        with httpx.Client(base_url=emulator.base_url, timeout=0.3) as http:
            http.post(emulator.control_url + "faults", json={"hang_rate": 1})
            with pytest.raises(httpx.ReadTimeout):
                http.post("v3/load_model", json=LOAD_BODY)
            http.post(emulator.control_url + "faults", json={"hang_rate": 0})
            listing = http.post("v3/finetune_list", json={"key": COMMUNITY_KEY})
            assert listing.json()["data"] == ["analog-diffusion"]
            # A hang in flight while the server stops must not hold the stop up.
            threading.Thread(target=_hang_once, args=(emulator.base_url,), daemon=True).start()
            http.post(emulator.control_url + "faults", json={"hang_rate": 1})
            time.sleep(0.1)
        started = time.monotonic()
    assert time.monotonic() - started < 3


def _hang_once(base_url: str) -> None:
    with suppress(httpx.HTTPError):  # the server cuts the hung request off as it stops
        httpx.post(
            base_url + "v1/enterprise/system_details", json={"key": ENTERPRISE_KEY}, timeout=10
        )


def test_cli_serves_until_sigint(tmp_path: Path) -> None:
    port = _free_port()
    accounts = tmp_path / "emulator.yaml"
    accounts.write_text("- {name: preset, key: preset-key, api: enterprise}\n", encoding="utf-8")
    command = [sys.executable, "-m", "reconciler", "emulator", "--port", str(port)]
    command += ["--config", str(accounts), "--error-mode", "modern", "--seed", "4"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        line = _read_line(process, WAIT * 2)
        assert line == f"Emulator listening on http://127.0.0.1:{port}/api/\n"
        base = line.split()[-1]
        control = base.replace("/api/", "/_emulator/")
        with httpx.Client(base_url=base, timeout=WAIT) as http:
            added = http.post(
                control + "accounts", json={"name": "s", "key": "s-key", "api": "community"}
            )
            assert added.status_code == 201
            load = http.post("v3/load_model", json=LOAD_BODY | {"key": "s-key"})
            assert load.json() == {"status": "success", "message": "model load started"}
            listing = http.post("v4/dreambooth/model_list", json={"key": "s-key"})
            assert listing.json()[-1]["status"] == "model_loading"
            preset = http.post("v1/enterprise/system_details", json={"key": "preset-key"})
            assert preset.json() == {"model_count": 0, "queue_time": 0, "status": "ok"}
            assert http.post("v3/finetune_list", json={"key": "nope"}).status_code == 401
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=WAIT * 2)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Emulator stopped." in stderr
    assert "Traceback" not in stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("the emulator printed nothing")
    return process.stdout.readline()
