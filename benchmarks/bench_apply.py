"""Benchmark of ``apply`` end to end against a real loopback emulator: converge, then repair.

Starts the emulator on a loopback port (:func:`reconciler.emulator.running_emulator`) with a
fast clock (``--time-scale``, default 600: a 60 s load takes 0.1 s, a 120 s reload 0.2 s),
``--accounts`` accounts (default 20, alternately community and enterprise; every other pair has
``queue_limit`` 3, the rest 5) of ``--models`` declared models each (default 10), and runs
:func:`reconciler.engine.apply_with_ledger` twice:

1. **converge**: from empty accounts until every model is ready;
2. **repair**: after moving the emulated clock 8 days forward (community models idle for 7 days
   are evicted), the run that reloads them.

For each run it measures the wall time; the API requests (the emulator's ``GET
/_emulator/requests`` counter, before and after) in total, per endpoint and per model; the most
loads in flight on each account, sampled by a background thread that polls ``GET
/_emulator/state`` every ``--sample-ms`` (default 20 ms) and counts models in ``model_loading``,
and computed exactly from the emulator's records afterwards (each model's load interval); and
the requests the API refused. The emulator's counters do not say which requests were refused,
so a wrapper around the client's transport reads every answer and counts the spam-filter and
queue-limit refusals (``Rate limit exceeded``) and other errors. PASS/FAIL lines check that no
account ever had more loads in flight than its queue limit, that nothing was refused, and that
every account converged.

The client's spam window is the API's 30 s scaled by the time scale, and the poll interval
1.2 times that, as ``reconciler demo`` does.

    python benchmarks/bench_apply.py [--accounts A --models M] [--time-scale S] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from _fixtures import GeneratedAccount, keys_for, print_table, write_manifests

from reconciler.apply import ApplyOptions
from reconciler.core.report import ApplyReport
from reconciler.demo import fast_clock_settings
from reconciler.emulator import AccountConfig, EmulatorConfig, EmulatorHandle, running_emulator
from reconciler.engine import ApiAccess, PlanResult, apply_with_ledger
from reconciler.ledger import FolderLedger
from reconciler.manifest.loader import load_manifests

EIGHT_DAYS = 8 * 86_400
RATE_LIMITED = "Rate limit exceeded"


class RefusalCounter(httpx.AsyncBaseTransport):
    """Sends through a real HTTP transport and counts the answers that refused the request."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # "spam" / "queue" / "other error"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = request.url.path.split("/api/", 1)[-1]
        self.sent[endpoint] += 1
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        kind = _refusal(response.status_code, body)
        if kind:
            self.refused[f"{kind} {endpoint}"] += 1
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=body,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()

    def reset(self) -> None:
        """Start counting from zero."""
        self.sent.clear()
        self.refused.clear()


def _refusal(status_code: int, body: bytes) -> str:
    """``spam``, ``queue`` or ``error`` for an answer that refused its request, else ``""``."""
    try:
        data = json.loads(body)
    except ValueError:
        return "error"
    if isinstance(data, dict) and data.get("status") in ("error", "failed"):
        message = str(data.get("message", ""))
        if message.startswith(RATE_LIMITED):
            return "queue" if "queued requests" in message else "spam"
        return "error"
    return "error" if status_code >= 400 else ""


class InFlightSampler:
    """Polls ``GET /_emulator/state`` in a thread and keeps each account's most loads in flight."""

    def __init__(self, control_url: str, interval: float) -> None:
        self.url = control_url + "state"
        self.interval = interval
        self.max_loading: dict[str, int] = {}
        self.samples = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="in-flight-sampler", daemon=True)
        # Built here, not in the thread: creating a client loads the CA bundle (tens of ms).
        self._client = httpx.Client(timeout=5)

    def __enter__(self) -> InFlightSampler:
        if self.interval > 0:
            self._sample()  # one sample before the run starts, which also warms the connection
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        try:
            state = self._client.get(self.url).json()
        except (httpx.HTTPError, ValueError):
            self.errors += 1
            return
        self.samples += 1
        for account in state["accounts"]:
            loading = sum(1 for m in account["models"] if m["status"] == "model_loading")
            name = account["name"]
            self.max_loading[name] = max(self.max_loading.get(name, 0), loading)


def exact_in_flight(emulator: EmulatorHandle, since: float) -> dict[str, int]:
    """Each account's most loads in flight, from the load intervals the emulator recorded.

    Only loads started at or after ``since`` (emulated seconds) count; a load ends when its
    model became ready or failed (``last_used_at`` is set to that moment), or is still running.
    """
    peaks: dict[str, int] = {}
    for name, account in emulator.state.accounts.items():
        events: list[tuple[float, int]] = []
        for record in list(account.models.values()):
            start = record.started_at
            if start is None or start < since:
                continue
            end = record.due_at if record.status == "model_loading" else record.last_used_at
            events += [(start, 1), (end if end is not None else float("inf"), -1)]
        running = peak = 0
        for _, step in sorted(events):  # at equal times an end (-1) sorts before a start
            running += step
            peak = max(peak, running)
        peaks[name] = peak
    return peaks


def _control(emulator: EmulatorHandle, path: str, body: Mapping[str, Any] | None = None) -> Any:
    url = emulator.control_url + path
    response = httpx.post(url, json=body, timeout=10) if body else httpx.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


def measured_apply(
    title: str,
    emulator: EmulatorHandle,
    config: ApiAccess,
    ledger: FolderLedger,
    options: ApplyOptions,
    counter: RefusalCounter,
    generated: Sequence[GeneratedAccount],
    sample_interval: float,
) -> dict[str, Any]:
    """Run ``apply_with_ledger`` once and measure it."""
    planned: dict[str, int] = {}

    def on_plan(run: PlanResult) -> None:
        planned.update({k: v for k, v in run.plan.counts().items() if v})

    before = _control(emulator, "requests")
    counter.reset()
    emulated_start = emulator.state.clock.now()
    with InFlightSampler(emulator.control_url, sample_interval) as sampler:
        started, cpu_started = time.perf_counter(), time.process_time()
        report: ApplyReport = apply_with_ledger(config, ledger, options, on_plan=on_plan)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    after = _control(emulator, "requests")
    exact = exact_in_flight(emulator, emulated_start)

    endpoints = {
        path: n - before["endpoints"].get(path, 0)
        for path, n in after["endpoints"].items()
        if n - before["endpoints"].get(path, 0)
    }
    limits = {g.name: g.queue_limit for g in generated}
    over = sorted(
        name
        for name, limit in limits.items()
        if sampler.max_loading.get(name, 0) > limit or exact.get(name, 0) > limit
    )
    done: Counter[str] = Counter()
    for account in report.accounts:
        for item in account.items:
            done[f"{item.action.value} {item.outcome.value}"] += 1
    total = after["total"] - before["total"]
    return {
        "run": title,
        "wall_s": wall,
        "cpu_s": cpu,
        "converged": report.ok(),
        "not_converged": [a.account for a in report.accounts if not a.converged],
        "planned": planned,
        "outcomes": dict(sorted(done.items())),
        "requests_total": total,
        "requests_endpoints": endpoints,
        "client_sent": sum(counter.sent.values()),
        "refused": dict(counter.refused),
        "sampler_samples": sampler.samples,
        "sampler_errors": sampler.errors,
        "max_in_flight_sampled": sampler.max_loading,
        "max_in_flight_exact": exact,
        "queue_limits": limits,
        "over_limit": over,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the sizes, run converge and repair, print tables (or JSON); 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20, help="accounts (default 20)")
    parser.add_argument("--models", type=int, default=10, help="models per account (10)")
    parser.add_argument("--time-scale", type=float, default=600.0, help="emulated s per real s")
    parser.add_argument(
        "--sample-ms", type=float, default=20.0, help="state poll period, 0: off (20)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        generated = write_manifests(
            Path(tmp) / "manifests",
            args.accounts,
            args.models,
            queue_limit=lambda index: 3 if (index // 2) % 2 == 0 else 5,
            prune=lambda _index: "managed",
        )
        accounts = load_manifests([Path(tmp) / "manifests"])
        keys = keys_for(generated)
        emulator_config = EmulatorConfig(
            accounts=[
                AccountConfig(
                    name=g.name, key=keys[g.key_env], api=g.api, queue_limit=g.queue_limit
                )
                for g in generated
            ],
            time_scale=args.time_scale,
        )
        settings, options = fast_clock_settings(args.time_scale)
        counter = RefusalCounter(
            httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=settings.max_concurrency))
        )
        ledger = FolderLedger(Path(tmp) / "ledger")
        with running_emulator(emulator_config) as emulator:
            config = ApiAccess(accounts, keys, emulator.base_url, settings, transport=counter)
            common = (emulator, config, ledger, options, counter, generated, args.sample_ms / 1000)
            results.append(measured_apply("converge", *common))
            _control(emulator, "clock", {"advance_seconds": EIGHT_DAYS})
            results.append(measured_apply("repair (+8 days)", *common))

    community = sum(1 for g in generated if g.api == "community")
    n_models = args.accounts * args.models
    checks = {
        "in flight never above queue_limit": all(not r["over_limit"] for r in results),
        "no request refused (spam filter, queue limit, errors)": all(
            not r["refused"] for r in results
        ),
        "every account converged": all(r["converged"] for r in results),
    }
    if args.json:
        document = {
            "accounts": args.accounts,
            "community": community,
            "models_per_account": args.models,
            "time_scale": args.time_scale,
            "runs": results,
            "checks": checks,
        }
        json.dump(document, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print(
            f"bench_apply: {args.accounts} accounts ({community} community) × {args.models} "
            f"models, time scale {args.time_scale:g}, "
            f"client spam window {settings.spam_window * 1000:.0f} ms, "
            f"poll {options.poll_interval * 1000:.0f} ms\n"
        )
        for r in results:
            limits = r["queue_limits"]
            peaks = Counter(
                f"{r['max_in_flight_sampled'].get(n, 0)}/{r['max_in_flight_exact'].get(n, 0)}"
                f" of {limit}"
                for n, limit in limits.items()
            )
            rows = [
                ("wall time", f"{r['wall_s']:.2f} s"),
                (
                    "process CPU time",
                    f"{r['cpu_s']:.2f} s (all threads: client, emulator, sampler)",
                ),
                ("planned", ", ".join(f"{k} {v}" for k, v in r["planned"].items())),
                ("outcomes", ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())),
                ("API requests (emulator)", str(r["requests_total"])),
                ("  client sent", str(r["client_sent"])),
                ("  per model", f"{r['requests_total'] / n_models:.2f}"),
                ("  by endpoint", json.dumps(r["requests_endpoints"])),
                ("refused", json.dumps(r["refused"]) if r["refused"] else "none"),
                (
                    "max in flight: sampled/exact of limit ×accounts",
                    ", ".join(f"{k} ×{v}" for k, v in peaks.items()),
                ),
                ("state samples", f"{r['sampler_samples']} ({r['sampler_errors']} errors)"),
                ("converged", "yes" if r["converged"] else f"no: {r['not_converged']}"),
            ]
            print_table(rows, r["run"])
            print()
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
