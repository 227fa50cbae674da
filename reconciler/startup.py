"""Process start-up of the command line: what gets imported, and how often the GC runs.

Imported by :mod:`reconciler.cli` before anything that imports httpx. Two things, both measured
on ``plan`` of 10k models (see benchmarks/README.md):

- httpx imports its own command line (click, rich and pygments) whenever they are installed,
  about 60 ms at every start. Marking ``httpx._main`` as absent makes httpx fall back to the stub
  it has for when those are missing; the reconciler never uses httpx's command line.
- :func:`tune_gc`: parsing manifests and listings allocates hundreds of thousands of small
  containers, none of them cyclic, and CPython's default thresholds run a collection every
  700 of them over an ever larger heap: about two thirds of the YAML parse time. The objects
  made by imports are frozen out of the collector and the first threshold raised.
"""

from __future__ import annotations

import gc
import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

#: Allocations between young-generation collections (CPython's default is 700).
GC_THRESHOLD = 50_000


def tune_gc() -> None:
    """Freeze what imports made and collect rarely; cycles are still collected."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, middle, old)
