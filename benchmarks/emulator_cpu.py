"""``python -m benchmarks emulator``: the emulator's CPU per listing of a large account.

Builds an emulator state in-process with one community and one enterprise account of
``--models`` ready models each, then times (``time.process_time``, best of ``--repeat``)
what a listing request costs the emulator besides HTTP: settling due transitions, the
endpoint's handler, and rendering the response. The first listing fills the cache of entry
texts, so it is reported apart from the best.
"""

from __future__ import annotations

import time
from typing import Any

from reconciler.emulator import AccountConfig, EmulatorConfig, EmulatorState, handlers


def run(models: int, repeat: int) -> dict[str, Any]:
    """Best and first CPU time of model_list and get_all_models over ``models`` models."""
    accounts = [
        AccountConfig(name="c", key="kc", api="community"),
        AccountConfig(name="e", key="ke", api="enterprise"),
    ]
    state = EmulatorState(EmulatorConfig(accounts=accounts))
    for i in range(models):
        spec = {"url": "org/m", "model_name": f"Model {i}", "model_type": "huggingface"}
        state.seed_model("c", f"m{i}", spec)
        state.seed_model("e", f"m{i}", spec)
    results: dict[str, Any] = {"models": models}
    for name, handle, account, key in (
        ("model_list", handlers.model_list, "c", "kc"),
        ("get_all_models", handlers.get_all_models, "e", "ke"),
    ):
        times = []
        for _ in range(repeat):
            started = time.process_time()
            state.advance()
            reply = handle(state, state.accounts[account], {"key": key})
            reply.render("legacy")
            times.append(time.process_time() - started)
        results[name] = {
            "first_ms": round(times[0] * 1000, 2),
            "best_ms": round(min(times) * 1000, 2),
        }
        print(
            f"{name} of {models} models: first {times[0] * 1000:.1f} ms, "
            f"best {min(times) * 1000:.1f} ms of CPU",
            flush=True,
        )
    return results
