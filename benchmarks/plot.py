"""The fleet plot: wall time against the number of changes, per tool, with the lower bound.

Needs matplotlib (``pip install -e '.[bench]'``); only ``--plot`` imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABELS = {
    "apply": "reconciler apply (whole process)",
    "sequential": "httpx script, sequential",
    "threads": "httpx script, 8 threads",
    "oracle": "oracle: told the load time, does nothing else",
}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Write a PNG: best wall time per tool and number of changes, and the bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    changes = sorted({r["changes"] for r in results})
    for tool, label in LABELS.items():
        points = []
        for count in changes:
            rows = [r for r in results if r["tool"] == tool and r["changes"] == count]
            if rows:
                best = min(rows, key=lambda r: r["wall_s"])
                points.append((count, best["wall_s"], best["timed_out"]))
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
            for count, wall, timed_out in points:
                if timed_out:
                    axes.annotate("timed out", (count, wall), fontsize=7)
    bounds = {r["changes"]: r["bound_s"] for r in results}
    axes.plot(changes, [bounds[c] for c in changes], linestyle="--", label="schedule lower bound")
    axes.set_xlabel("models to load (changes)")
    axes.set_ylabel("wall time (s)")
    axes.set_yscale("log")
    axes.set_title("Converging a fleet: 50 ms latency, queue limit 5, 1 s loads")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
