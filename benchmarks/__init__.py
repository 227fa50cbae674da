"""Benchmarks of the reconciler: ``python -m benchmarks fleet|plan …`` (see README.md).

Everything here runs on loopback only and stops by itself. The standalone ``bench_*.py`` scripts
predate the runner and are still run as files (``python benchmarks/bench_plan.py``).
"""
