"""Benchmark of the GitHub renderers at scale: the PR comment, the job summary, plan_hash.

Builds a plan of ``--accounts`` × ``--models`` loads (default 100 × 100 = 10,000 models) and
measures the wall time and the size of :func:`render_plan_comment` (cut under 60,000
characters), :func:`plan_summary` (kept under 1 MiB) and :func:`plan_hash`. Best and median of
``--repeat`` runs. No network.

    python benchmarks/bench_github.py [--accounts N --models M] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from reconciler.core.intent import plan_hash
from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan
from reconciler.render.comment import render_plan_comment
from reconciler.render.github import plan_summary


def build_plan(accounts: int, models: int) -> Plan:
    """``accounts`` accounts of ``models`` loads each."""
    return Plan(
        accounts=tuple(
            AccountPlan(
                account=f"account-{a:04d}",
                api="community",
                live_fingerprint="sha256:x",
                changes=tuple(
                    ModelChange(
                        model_id=f"model-{m:05d}",
                        action=Action.LOAD,
                        reason="not on the account",
                        condition=Condition.MISSING,
                        declared=True,
                        managed=False,
                        spec_hash=f"sha256:{a:04d}{m:05d}",
                        origin=f"manifests/account-{a:04d}.yaml:{10 + m}",
                    )
                    for m in range(models)
                ),
            )
            for a in range(accounts)
        )
    )


def timed(function: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    times = []
    result: object = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    plan = build_plan(args.accounts, args.models)
    digest = plan_hash(plan)
    print(f"{args.accounts * args.models} models in {args.accounts} accounts")
    for name, function in (
        ("plan_hash", lambda: plan_hash(plan)),
        ("PR comment", lambda: render_plan_comment(plan, digest)),
        ("job summary", lambda: plan_summary(plan, digest, {})),
    ):
        best, median, result = timed(function, args.repeat)
        size = f"{len(str(result).encode()):>9,} bytes" if name != "plan_hash" else ""
        print(f"{name:<12} best {best * 1000:8.1f} ms  median {median * 1000:8.1f} ms  {size}")


if __name__ == "__main__":
    main()
