"""``python -m benchmarks fleet``: ``reconciler apply`` against two httpx scripts and the bound.

For each number of changes, every tool gets the same work on a fresh emulator in its own
process (seeded with the unchanged models ready, the changed ones missing, injected latency):
``reconciler apply`` (a child process, ledger on), ``script_sequential.py`` and
``script_threads.py``, and ``script_oracle.py`` (the floor: a client told the load time, which
does nothing else), in alternating order when repeated. Per run it records the child's wall
and CPU time, the phase from the first API request to the last (the emulator's arrival times),
the requests per endpoint, and the most loads in flight per account (a sweep over the load
intervals in ``GET /_emulator/state``), and whether everything became ready. The schedule
lower bound (issue 11) is computed from the same settings. Every run is bounded by
``--tool-timeout``; a run that hits it is reported as timed out, with what it got done.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.work import (
    Account,
    EmulatorProcess,
    keys,
    make_fleet,
    write_manifests,
    write_seed,
    write_work,
)

HERE = Path(__file__).resolve().parent
TOOLS = ("apply", "sequential", "threads", "oracle")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fleet runner's options."""
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--models", type=int, default=100, help="models per account")
    parser.add_argument(
        "--changes", default="1000", help="models to load, comma-separated for several runs"
    )
    parser.add_argument("--queue-limit", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--time-scale", type=float, default=60.0, help="emulated s per real s")
    parser.add_argument("--load-seconds", type=float, default=60.0, help="emulated")
    parser.add_argument("--spam-window", type=float, default=30.0, help="emulated seconds")
    parser.add_argument("--api", default="mixed", choices=["mixed", "community", "enterprise"])
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tool-timeout", type=float, default=900.0, help="real seconds per run")
    parser.add_argument(
        "--global-args", default="", help="extra global options, e.g. --max-concurrency=16"
    )
    parser.add_argument(
        "--apply-args", default="", help="extra options for apply, e.g. --no-ledger"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the plot here (needs the bench extra)")


def lower_bound(fleet: list[Account], latency: float, load: float, spam: float) -> float:
    """The schedule lower bound of issue 11, in real seconds."""
    worst = 0.0
    for account in fleet:
        listed = latency  # P0: the plan's listing answers
        for _ in range(math.ceil(len(account.changed) / account.queue_limit)):
            accepted = listed + latency  # A_k
            listed = max(accepted + load, listed + spam)  # P_k
        worst = max(worst, listed)
    return worst


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every tool on every number of changes; the results, printed as they come."""
    tools = [t for t in args.tools.split(",") if t]
    scale = args.time_scale
    settings = {
        "time_scale": scale,
        "load_seconds": args.load_seconds,
        "spam_window_seconds": args.spam_window,
    }
    results: list[dict[str, Any]] = []
    for changes in [int(c) for c in args.changes.split(",")]:
        fleet = make_fleet(
            args.accounts, args.models, changes, queue_limit=args.queue_limit, api=args.api
        )
        bound = lower_bound(
            fleet, args.latency_ms / 1000, args.load_seconds / scale, args.spam_window / scale
        )
        print(
            f"\n{args.accounts} accounts x {args.models} models, {changes} changes: "
            f"lower bound {bound:.2f} s",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
            folder = Path(tmp)
            write_manifests(fleet, folder / "manifests")
            write_seed(fleet, folder / "seed.json", settings)
            write_work(fleet, folder / "work.json")
            for repeat in range(args.repeat):
                order = tools if repeat % 2 == 0 else tools[::-1]
                for tool in order:
                    row = _one_run(tool, fleet, folder, args)
                    row |= {"changes": changes, "repeat": repeat, "bound_s": round(bound, 3)}
                    _print_row(row)
                    results.append(row)
    summary = _ratios(results)
    for line in summary["lines"]:
        print(line)
    if args.plot:
        from benchmarks.plot import plot

        plot(results, args.plot)
    ok = all(r["converged"] and not r["queue_limit_exceeded"] for r in results)
    return {
        "fleet": results,
        "ratios": summary["ratios"],
        "ok": ok,
        "args": vars(args)
        | {
            "json": str(args.json) if args.json else None,
            "plot": str(args.plot) if args.plot else None,
        },
    }


def _command(tool: str, base_url: str, folder: Path, args: argparse.Namespace) -> list[str]:
    window = args.spam_window / args.time_scale
    load = args.load_seconds / args.time_scale  # told to the oracle only
    if tool == "apply":
        # BENCH_PROFILE=FILE runs apply under cProfile, its stats written to FILE.
        profile = os.environ.get("BENCH_PROFILE")
        profiler = ["-m", "cProfile", "-o", profile] if profile else []
        # BENCH_WRAP="py-spy record -o F --" runs apply under another program (a profiler).
        wrapper = shlex.split(os.environ.get("BENCH_WRAP", ""))
        return [
            *wrapper, sys.executable, *profiler, "-m", "reconciler",
            "--api-base", base_url, *args.global_args.split(),
            "--spam-window", str(window), "apply", str(folder / "manifests"),
            "--ledger", str(folder / "ledger"), "--poll-interval", str(window),
            "--timeout", str(args.tool_timeout), "-o", "json", *args.apply_args.split(),
        ]  # fmt: skip
    script = HERE / f"script_{tool}.py"
    told = ["--load", str(load), "--queue", str(args.queue_limit)] if tool == "oracle" else []
    return [sys.executable, str(script), "--api-base", base_url,
            "--work", str(folder / "work.json"), "--poll", str(window), *told]  # fmt: skip


def _one_run(
    tool: str, fleet: list[Account], folder: Path, args: argparse.Namespace
) -> dict[str, Any]:
    shutil.rmtree(folder / "ledger", ignore_errors=True)  # every run starts with no ledger
    with EmulatorProcess(folder / "seed.json") as emulator:
        emulator.post("_emulator/faults", {"latency_ms": args.latency_ms})
        command = _command(tool, emulator.base_url, folder, args)
        env = os.environ | keys(fleet) | {"PYTHONPATH": str(HERE.parent)}
        emulator_cpu = emulator.cpu_seconds()
        started, spawned = time.perf_counter(), time.monotonic()  # the emulator's clock
        with (folder / f"{tool}.log").open("wb") as log:
            child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
            status, usage, timed_out = _wait(child, started + args.tool_timeout)
        wall, ended = time.perf_counter() - started, time.monotonic()
        emulator_cpu = emulator.cpu_seconds() - emulator_cpu
        timeline = emulator.get("_bench/timeline")
        if os.environ.get("BENCH_LOG"):  # BENCH_LOG=FILE keeps the tool's standard error
            shutil.copyfile(folder / f"{tool}.log", os.environ["BENCH_LOG"])
        if os.environ.get("BENCH_TIMELINE"):  # BENCH_TIMELINE=FILE keeps the arrivals
            Path(os.environ["BENCH_TIMELINE"]).write_text(json.dumps(timeline), "utf-8")
        state = emulator.get("_emulator/state")
        requests = emulator.get("_emulator/requests")
    arrivals = [at for at, _ in timeline["arrivals"]]
    in_flight, ready = _loads(state, fleet)
    limits = {a.name: a.queue_limit for a in fleet}
    changed = {a.name: len(a.changed) for a in fleet}
    return {
        "tool": tool,
        "exit_code": os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        # the emulator's own CPU while the tool ran: it must stay well below the tool's wall
        "emulator_cpu_s": round(emulator_cpu, 3),
        "phase_s": round(max(arrivals) - min(arrivals), 3) if arrivals else None,
        # start-up, reading and planning; then the report, the ledger's compaction and exit
        "before_first_request_s": round(min(arrivals) - spawned, 3) if arrivals else None,
        "after_last_request_s": round(ended - max(arrivals), 3) if arrivals else None,
        "requests": requests["total"],
        "endpoints": requests["endpoints"],
        "ready": ready,
        "converged": ready == sum(changed.values()) and not timed_out,
        "max_in_flight": in_flight,
        "queue_limit_exceeded": any(in_flight[n] > limits[n] for n in in_flight),
        "queue_limit_reached_everywhere": all(
            in_flight.get(n, 0) == limits[n] for n in limits if changed[n] > limits[n]
        ),
        "command": " ".join(
            ["reconciler" if tool == "apply" else f"script_{tool}.py", *_shown_args(tool)]
        ),
    }


def _shown_args(tool: str) -> list[str]:
    if tool == "apply":
        return ["--spam-window 0.5 apply manifests/ --ledger DIR --poll-interval 0.5 -o json"]
    told = " --load 1.0 --queue 5" if tool == "oracle" else ""
    return [f"--api-base URL --work work.json --poll 0.5{told}"]


def _wait(child: subprocess.Popen[bytes], deadline: float) -> tuple[int, Any, bool]:
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            return status, usage, False
        if time.perf_counter() > deadline:
            child.kill()
            _, status, usage = os.wait4(child.pid, 0)
            return status, usage, True
        time.sleep(0.02)


def _loads(state: dict[str, Any], fleet: list[Account]) -> tuple[dict[str, int], int]:
    """Most loads in flight at once per account (sweep), and how many changed models are ready.

    A load runs from ``started_at`` to ``ready_at`` (or ``last_used_at`` when it failed, or
    ``due_at`` while it still runs).
    """
    changed = {a.name: a.changed for a in fleet}
    peaks: dict[str, int] = {}
    ready = 0
    for account in state["accounts"]:
        events: list[tuple[float, int]] = []
        for model in account["models"]:
            if model["model_id"] not in changed[account["name"]] or not model["started_at"]:
                continue
            ready += model["status"] == "model_ready"
            end = model["ready_at"] or model["last_used_at"] or model["due_at"]
            events += [(_seconds(model["started_at"]), 1), (_seconds(end), -1)]
        level = peak = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):
            level += step
            peak = max(peak, level)
        peaks[account["name"]] = peak
    return peaks, ready


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _print_row(row: dict[str, Any]) -> None:
    peaks = sorted(set(row["max_in_flight"].values()))
    print(
        f"  {row['tool']:<10} wall {row['wall_s']:8.2f} s  phase {row['phase_s'] or 0:8.2f} s  "
        f"CPU {row['cpu_s']:7.2f} s  requests {row['requests']:6}  ready {row['ready']}"
        f"{'  TIMED OUT' if row['timed_out'] else ''}  in flight per account {peaks}",
        flush=True,
    )
    if row["before_first_request_s"] is not None:
        print(
            f"  {'':<10} {row['before_first_request_s']:.2f} s to the first request, "
            f"{row['after_last_request_s']:.2f} s after the last; "
            f"the emulator's CPU {row['emulator_cpu_s']:.2f} s",
            flush=True,
        )


def _ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    lines, ratios = [], []
    for changes in sorted({r["changes"] for r in results}):
        rows = [r for r in results if r["changes"] == changes]
        best = {t: min((r for r in rows if r["tool"] == t), key=lambda r: r["wall_s"], default=None)
                for t in TOOLS}  # fmt: skip
        apply_row = best["apply"]
        if apply_row is None:
            continue
        entry: dict[str, Any] = {"changes": changes, "bound_s": apply_row["bound_s"]}
        entry["apply_phase_over_bound"] = round(apply_row["phase_s"] / apply_row["bound_s"], 2)
        entry["apply_wall_minus_bound_s"] = round(apply_row["wall_s"] - apply_row["bound_s"], 2)
        text = (f"{changes} changes: apply phase {apply_row['phase_s']:.2f} s = "
                f"{entry['apply_phase_over_bound']:.2f}x the bound "
                f"({apply_row['bound_s']:.2f} s); whole process bound + "
                f"{entry['apply_wall_minus_bound_s']:.2f} s")  # fmt: skip
        oracle = best["oracle"]
        if oracle is not None and oracle["phase_s"] and not oracle["timed_out"]:
            entry["oracle_phase_over_bound"] = round(oracle["phase_s"] / apply_row["bound_s"], 2)
            text += (f"; the oracle's phase {oracle['phase_s']:.2f} s = "
                     f"{entry['oracle_phase_over_bound']:.2f}x")  # fmt: skip
        for tool in ("sequential", "threads"):
            other = best[tool]
            if other is not None:
                ratio = other["wall_s"] / apply_row["wall_s"]
                prefix = ">= " if other["timed_out"] else ""
                entry[f"{tool}_over_apply"] = round(ratio, 1)
                text += f"; {tool} {prefix}{ratio:.1f}x slower"
        ratios.append(entry)
        lines.append(text)
    return {"lines": lines, "ratios": ratios}
