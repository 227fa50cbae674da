"""``plan`` at scale: whole-process CPU time and peak RSS of ``reconciler plan`` runs.

For each size (1k, 10k, 100k models by default), spread over 100 accounts and all in one
account, it writes the manifests, starts a seeded emulator in its own process (90 % of the
models ready, 10 % missing) and runs ``python -m reconciler plan`` as a child process; the
child's CPU time and peak RSS come from ``os.wait4``, so neither the runner nor the emulator
is counted. Each run is bounded by ``--timeout``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.work import EmulatorProcess, keys, make_fleet, write_manifests, write_seed


def plan_run(total: int, accounts: int, timeout: float, output: str = "text") -> dict[str, Any]:
    """One ``reconciler plan`` over ``total`` models in ``accounts`` accounts."""
    fleet = make_fleet(accounts, total // accounts, total // 10, api="community")
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        folder = Path(tmp)
        write_manifests(fleet, folder / "manifests")
        write_seed(fleet, folder / "seed.json", {"spam_window_seconds": 0})
        with EmulatorProcess(folder / "seed.json") as emulator:
            command = [
                # BENCH_WRAP="py-spy record -o F --" runs plan under another program (a profiler)
                *shlex.split(os.environ.get("BENCH_WRAP", "")),
                sys.executable,
                "-m",
                "reconciler",
                "--api-base",
                emulator.base_url,
                "plan",
                str(folder / "manifests"),
                "--ledger",
                str(folder / "ledger"),
                "-o",
                output,
            ]
            started = time.perf_counter()
            child = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, env=os.environ | keys(fleet)
            )
            deadline = started + timeout
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    child.kill()
                    pid, status, usage = os.wait4(child.pid, 0)
                    break
                time.sleep(0.01)
            wall = time.perf_counter() - started
    return {
        "models": total,
        "accounts": accounts,
        "output": output,
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "command": " ".join(["reconciler", "plan", "manifests/", "-o", output]),
    }


def run(
    sizes: list[int], layouts: list[int], timeout: float, output: str = "text"
) -> list[dict[str, Any]]:
    """Every size in every layout (number of accounts), printed as they finish."""
    rows = []
    for total in sizes:
        for accounts in layouts:
            row = plan_run(total, accounts, timeout, output)
            print(
                f"plan {total:>7} models in {accounts:>3} account(s), -o {output}: "
                f"exit {row['exit_code']}, "
                f"wall {row['wall_s']:.2f} s, CPU {row['cpu_s']:.2f} s, "
                f"peak RSS {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            rows.append(row)
    return rows
