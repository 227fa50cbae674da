"""``python -m benchmarks fleet|plan|emulator [options]``: see benchmarks/README.md."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any


def _machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def _compile_packages() -> None:
    """Write the bytecode of the measured code, as an installed package has it.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (this project's sandbox sets it), imports never
    write ``__pycache__``, so every ``reconciler`` process compiled the whole package from
    source: about 0.2 s of CPU per run that no installed copy pays (pip compiles at install).
    """
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("reconciler", "benchmarks"):
        compileall.compile_dir(root / package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="reconciler plan at scale: CPU and peak RSS")
    plan.add_argument("--sizes", default="1000,10000,100000", help="total models, comma-separated")
    plan.add_argument("--layouts", default="100,1", help="numbers of accounts, comma-separated")
    plan.add_argument("--timeout", type=float, default=300.0, help="seconds per run at most")
    plan.add_argument("--output", default="text", choices=["text", "json"], help="plan's -o")
    plan.add_argument("--json", type=Path, help="write the results here")
    emulator = commands.add_parser("emulator", help="the emulator's CPU per large listing")
    emulator.add_argument("--models", type=int, default=10_000)
    emulator.add_argument("--repeat", type=int, default=20)
    emulator.add_argument("--json", type=Path, help="write the results here")
    fleet = commands.add_parser("fleet", help="apply vs two httpx scripts vs the lower bound")
    from benchmarks import fleet as fleet_module

    fleet_module.add_arguments(fleet)
    args = parser.parse_args(argv)
    _compile_packages()
    if args.command == "emulator":
        from benchmarks import emulator_cpu

        results = {"machine": _machine(), "emulator": emulator_cpu.run(args.models, args.repeat)}
        ok = True
    elif args.command == "plan":
        from benchmarks import plan_scale

        sizes = [int(s) for s in args.sizes.split(",")]
        layouts = [int(s) for s in args.layouts.split(",")]
        results: Any = {
            "machine": _machine(),
            "plan": plan_scale.run(sizes, layouts, args.timeout, args.output),
        }
        ok = all(row["exit_code"] in (0, 2) for row in results["plan"])
    else:
        results = {"machine": _machine()} | fleet_module.run(args)
        ok = results["ok"]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
