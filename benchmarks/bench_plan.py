"""Benchmark of the offline half of ``plan``: reading manifests and making the plan.

Generates ``--accounts`` × ``--models`` model entries (default 100 × 100 = 10,000; half the
accounts community, half enterprise; realistic fields, account defaults, some ``protect``, every
20th entry ``ensure: absent``) into a temporary folder, then measures:

- the wall time of :func:`reconciler.manifest.loader.load_manifests` over that folder;
- the wall time of :func:`reconciler.core.plan.make_plan` against synthetic live states (a mix
  of ready, missing, evicted, loading, failed and unknown models, plus unmanaged, ledger-managed
  and ignored undeclared ones) and a synthetic ledger (most models recorded, some with an older
  spec so they are replaced, some failed three times so they are blocked);
- the size of the plan's JSON document (``plan -o json``) and the time to render it;
- the peak traced memory (``tracemalloc``) of load + plan, in a separate pass so that tracing
  does not inflate the times.

Times are the best and the median of ``--repeat`` runs. No network, no emulator.

    python benchmarks/bench_plan.py [--accounts N --models M] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _fixtures import print_table, write_manifests

from reconciler.core.ledger_entries import LedgerEntry, LedgerState
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.core.plan import Plan, make_plan
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.models import LoadedAccount, spec_hash
from reconciler.render.plan_json import plan_json_text

#: Conditions of declared models, cycled per model index (ready dominates, as in real life).
_COMMUNITY_MIX = (
    (Condition.READY, "model_ready"),
    (Condition.READY, "model_ready"),
    (Condition.READY, "model_ready"),
    (Condition.READY, "model_ready"),
    (Condition.READY, "model_ready"),
    (None, ""),  # missing
    (Condition.EVICTED, ""),
    (Condition.EVICTED, ""),
    (Condition.LOADING, "model_loading"),
    (Condition.FAILED, "model_failed"),
    (Condition.READY, "model_ready"),
    (Condition.READY, "model_ready"),
    (Condition.UNKNOWN, "model_exploded"),
    (None, ""),
)
#: Enterprise listings show only ready models (loading and failed ones are not listed).
_ENTERPRISE_MIX = ((Condition.READY, "model_ready"),) * 6 + ((None, ""),)
_STAMP = "2025-01-01T00:00:00Z"


def synthetic_live(accounts: Sequence[LoadedAccount]) -> dict[str, LiveState]:
    """A live state per account: declared models in mixed conditions, plus undeclared ones."""
    live: dict[str, LiveState] = {}
    for account in accounts:
        mix = _COMMUNITY_MIX if account.api == "community" else _ENTERPRISE_MIX
        models: dict[str, LiveModel] = {}
        for index, desired in enumerate(account.desired()):
            condition, status = mix[index % len(mix)]
            if desired.ensure == "absent" and index % 2 == 0:
                condition, status = Condition.READY, "model_ready"  # still live: delete/blocked
            if condition is not None:
                models[desired.model_id] = LiveModel(desired.model_id, condition, status)
        for extra in ("unmanaged-a", "unmanaged-b", "managed-old", "scratch-1", "scratch-2"):
            mid = f"{account.name}-{extra}" if not extra.startswith("scratch") else extra
            models[mid] = LiveModel(mid, Condition.READY, "model_ready")
        live[account.name] = LiveState(account.name, dict(sorted(models.items())))
    return live


def synthetic_ledger(accounts: Sequence[LoadedAccount]) -> LedgerState:
    """What an earlier apply left: most present models, some with an older spec or failures."""
    ledger: dict[str, dict[str, LedgerEntry]] = {}
    for account in accounts:
        entries: dict[str, LedgerEntry] = {}
        for index, desired in enumerate(account.desired()):
            if desired.ensure == "absent" or index % 10 == 9:  # 10 %: never applied
                continue
            spec = dict(desired.spec)
            outcome = "ready"
            failures = 0
            if index % 17 == 3:  # spec changed since: replace (or blocked if protected)
                spec["url"] = "old/" + spec.get("url", "")
            if index % 14 == 9:  # the failed ones of the mix: retried or blocked
                outcome, failures = "failed", 1 + index % 3
            entries[desired.model_id] = LedgerEntry(
                spec_hash=spec_hash(spec),
                spec=spec,
                applied_at=_STAMP,
                outcome=outcome,
                failures=failures,
            )
        old = f"{account.name}-managed-old"
        entries[old] = LedgerEntry(
            spec_hash=spec_hash({"url": "x"}), spec={"url": "x"}, applied_at=_STAMP, outcome="ready"
        )
        ledger[account.name] = entries
    return LedgerState(accounts=ledger)


def measure(folder: Path, repeat: int, memory: bool = True) -> dict[str, Any]:
    """Time load and plan ``repeat`` times, then trace the memory of one load + plan."""
    loads: list[float] = []
    plans: list[float] = []
    renders: list[float] = []
    accounts: tuple[LoadedAccount, ...] = ()
    plan: Plan | None = None
    text = ""
    live: dict[str, LiveState] = {}
    ledger = LedgerState()
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        accounts = load_manifests([folder])
        loads.append(time.perf_counter() - started)
        if not live:
            live, ledger = synthetic_live(accounts), synthetic_ledger(accounts)
        gc.collect()
        started = time.perf_counter()
        plan = make_plan(accounts, live, ledger)
        plans.append(time.perf_counter() - started)
        started = time.perf_counter()
        text = plan_json_text(plan)
        renders.append(time.perf_counter() - started)
    assert plan is not None

    # Memory: a fresh load + plan under tracemalloc (the inputs live and ledger are built
    # before tracing starts, as they would come from the API and the ledger file). Tracing
    # makes the pure-Python YAML parser several times slower, hence a separate pass.
    after_load, current, peak = (0, 0), 0, 0
    kept_plan = plan
    if memory:
        del plan, kept_plan
        gc.collect()
        tracemalloc.start()
        traced_accounts = load_manifests([folder])
        after_load = tracemalloc.get_traced_memory()
        kept_plan = make_plan(traced_accounts, live, ledger)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    counts = kept_plan.counts()
    return {
        "accounts": len(accounts),
        "models_declared": sum(len(a.spec.models) for a in accounts),
        "live_models": sum(len(s.models) for s in live.values()),
        "ledger_entries": sum(len(e) for e in ledger.accounts.values()),
        "load_manifests_s": {"best": min(loads), "median": statistics.median(loads)},
        "make_plan_s": {"best": min(plans), "median": statistics.median(plans)},
        "plan_json_render_s": {"best": min(renders), "median": statistics.median(renders)},
        "plan_json_bytes": len(text.encode()),
        "plan_changes": sum(len(a.changes) for a in kept_plan.accounts),
        "plan_counts": counts,
        "plan_blockers": len(kept_plan.blockers) + sum(len(a.blockers) for a in kept_plan.accounts),
        "traced_after_load_bytes": after_load[0],
        "traced_peak_load_plan_bytes": peak,
        "traced_retained_bytes": current,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "manifest_bytes": sum(p.stat().st_size for p in folder.glob("*.yaml")),
        "repeat": repeat,
    }


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _times(result: dict[str, Any], key: str) -> str:
    value = result[key]
    return f"{value['best'] * 1000:.0f} ms (median {value['median'] * 1000:.0f} ms)"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the sizes, generate the manifests, measure, print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100, help="accounts (default 100)")
    parser.add_argument("--models", type=int, default=100, help="models per account (100)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs (default 2)")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the tracemalloc pass (the slow part)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        folder = Path(tmp) / "manifests"
        started = time.perf_counter()
        write_manifests(folder, args.accounts, args.models, absent_every=20)
        generated = time.perf_counter() - started
        result = measure(folder, max(1, args.repeat), memory=not args.no_memory)
    result["generate_s"] = generated

    if args.json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in result["plan_counts"].items() if v)
    skipped = " (skipped: --no-memory)" if args.no_memory else ""
    rows = [
        ("accounts × models", f"{args.accounts} × {args.models} = {result['models_declared']}"),
        ("manifest files", f"{result['accounts']} files, {_mib(result['manifest_bytes'])}"),
        ("live models / ledger entries", f"{result['live_models']} / {result['ledger_entries']}"),
        ("load_manifests", _times(result, "load_manifests_s")),
        ("make_plan", _times(result, "make_plan_s")),
        ("plan JSON render", _times(result, "plan_json_render_s")),
        ("plan JSON size", _mib(result["plan_json_bytes"])),
        ("plan changes", f"{result['plan_changes']} ({counts})"),
        ("plan blockers", str(result["plan_blockers"])),
        ("traced memory after load", _mib(result["traced_after_load_bytes"]) + skipped),
        ("traced peak load + plan", _mib(result["traced_peak_load_plan_bytes"]) + skipped),
        ("process max RSS", _mib(result["max_rss_bytes"])),
    ]
    print_table(rows, f"bench_plan (best of {result['repeat']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
