"""A small fault campaign: 10 % mixed faults (5xx, hangs, malformed answers, ``Failed, Try
Again``) in both error modes, three seeds, a few accounts. Safe and complete: every account
converges within two applies, no model is loaded twice, the ledger stays valid, and no run
ends in a traceback. The full campaign (more seeds, more accounts) is
``benchmarks/bench_faults.py``."""

from __future__ import annotations

import pytest

from reconciler.ledger import FolderLedger

from ..e2e.e2e_support import LOAD_ENDPOINTS, World, community_model, enterprise_model

READY = "model_ready"
MODELS = 5
RATES = {"error_rate": 0.03, "hang_rate": 0.02, "malformed_rate": 0.03, "failed_rate": 0.02}


@pytest.mark.parametrize("mode", ["legacy", "modern"])
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_ten_percent_faults_converge_within_two_applies_without_duplicates(
    world: World, mode: str, seed: int
) -> None:
    world.manifest("studio", [community_model(f"c{n}") for n in range(MODELS)])
    world.manifest("farm", [enterprise_model(f"e{n}") for n in range(MODELS)])
    world.manifest("narrow", [community_model(f"n{n}") for n in range(MODELS)])
    world.control("settings", {"error_mode": mode})
    world.faults(seed=seed, **RATES)

    applies = []
    for _ in range(2):
        result = world.apply("--timeout", "60", "--load-grace", "5")
        applies.append(result)
        assert "Traceback" not in result.text and "internal error" not in result.text
        if result.code == 0:
            break
    world.faults(error_rate=0, hang_rate=0, malformed_rate=0, failed_rate=0)

    assert applies[-1].code == 0, [a.text[-2000:] for a in applies]
    for account, prefix in (("studio", "c"), ("farm", "e"), ("narrow", "n")):
        assert world.statuses(account) == {f"{prefix}{n}": READY for n in range(MODELS)}
        loads = {m: record["loads"] for m, record in world.models(account).items()}
        assert loads == {f"{prefix}{n}": 1 for n in range(MODELS)}, (account, loads)
    assert world.plan("--detailed-exitcode").code == 0
    ledger = FolderLedger(world.ledger).read()  # reads: every file valid
    assert {e.outcome for a in ledger.accounts.values() for e in a.values()} == {"ready"}
    assert sum(world.count(e) for e in LOAD_ENDPOINTS) >= 3 * MODELS
