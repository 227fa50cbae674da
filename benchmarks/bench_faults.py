"""Fault campaign: ``apply`` against an emulator injecting 10 % mixed faults, several seeds.

For each seed and error mode: ``--accounts`` accounts (half community, half enterprise) of
``--models`` models each, faults at ``--rate`` in all (split over 5xx answers, hung answers,
malformed answers and ``Failed, Try Again``), then ``apply`` until it converges (at most
``--max-applies``). It counts the applies needed, the accounts converged by the first apply,
duplicate loads (a model loaded more than once), whether the ledger reads back, and any run
that ended in an internal error.

    python benchmarks/bench_faults.py [--accounts 10 --models 20] [--seeds 1,2,3,4,5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from _fixtures import keys_for, write_manifests

from reconciler.apply import ApplyOptions
from reconciler.demo import fast_clock_settings
from reconciler.emulator import AccountConfig, EmulatorConfig, running_emulator
from reconciler.engine import ApiAccess, apply_with_ledger
from reconciler.ledger import FolderLedger
from reconciler.manifest.loader import load_manifests

TIME_SCALE = 60.0


def campaign(args: argparse.Namespace, seed: int, mode: str) -> dict[str, Any]:
    """One seed in one error mode: applies until converged; what it took."""
    rate = args.rate
    faults = {
        "error_rate": rate * 0.3,
        "hang_rate": rate * 0.2,
        "malformed_rate": rate * 0.3,
        "failed_rate": rate * 0.2,
        "seed": seed,
    }
    with tempfile.TemporaryDirectory() as tmp:
        generated = write_manifests(Path(tmp) / "manifests", args.accounts, args.models)
        accounts = load_manifests([Path(tmp) / "manifests"])
        keys = keys_for(generated)
        config = EmulatorConfig(
            accounts=[
                AccountConfig(name=g.name, key=keys[g.key_env], api=g.api, queue_limit=5)
                for g in generated
            ],
            time_scale=TIME_SCALE,
            error_mode=mode,
            seed=seed,
        )
        settings, _ = fast_clock_settings(TIME_SCALE)
        options = ApplyOptions(timeout=120.0, poll_interval=settings.spam_window, load_grace=5.0)
        ledger = FolderLedger(Path(tmp) / "ledger")
        firsts: list[int] = []
        applies = 0
        crashed = 0
        with running_emulator(config) as emulator:
            httpx.post(emulator.control_url + "faults", json=faults, timeout=10)
            run = ApiAccess(accounts, keys, emulator.base_url, settings)
            for _ in range(args.max_applies):
                applies += 1
                try:
                    report = apply_with_ledger(run, ledger, options)
                except Exception:  # a crash is what the campaign looks for
                    crashed += 1
                    continue
                firsts.append(sum(1 for a in report.accounts if a.converged))
                if report.ok():
                    break
            state = httpx.get(emulator.control_url + "state", timeout=10).json()
        loads = [m["loads"] for a in state["accounts"] for m in a["models"]]
        ledger_ok = True
        try:
            ledger.read()
        except Exception:
            ledger_ok = False
    return {
        "seed": seed,
        "mode": mode,
        "applies": applies,
        "first_apply_converged": firsts[0] if firsts else 0,
        "accounts": args.accounts,
        "converged": bool(firsts) and firsts[-1] == args.accounts,
        "duplicate_loads": sum(n - 1 for n in loads if n > 1),
        "ledger_reads": ledger_ok,
        "crashes": crashed,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--modes", default="modern,legacy")
    parser.add_argument("--rate", type=float, default=0.10)
    parser.add_argument("--max-applies", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [
        campaign(args, int(seed), mode)
        for mode in args.modes.split(",")
        for seed in args.seeds.split(",")
    ]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        keys = list(rows[0])
        print("  ".join(f"{k:>21}" for k in keys))
        for row in rows:
            print("  ".join(f"{row[k]!s:>21}" for k in keys))
    bad = [r for r in rows if not r["converged"] or r["duplicate_loads"] or r["crashes"]]
    print("PASS" if not bad else f"FAIL: {len(bad)} runs", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
