"""A key revoked in the middle of a run: loads the API accepted stay accepted in the ledger.

The API answered "load started" for them before the key was refused, so they may well finish;
recording them failed would tell the next run that the models are not loading. The report
still says the run failed on the key.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from reconciler.api.client import Accepted
from reconciler.api.kinds import ApiKind
from reconciler.apply import AccountApply, ApplyOptions
from reconciler.clock import FakeClock
from reconciler.core.events import NullProgress
from reconciler.core.ledger_entries import LedgerEntry
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.core.plan import AccountPlan
from reconciler.core.report import Outcome
from reconciler.errors import InvalidKey

from .test_apply_load_times import load_change

pytestmark = pytest.mark.anyio

ACCEPTED_BEFORE_REVOKED = 2


class RevokedMidRun:
    """Accepts the first loads, then refuses the key for everything (a revoked key)."""

    api = ApiKind.COMMUNITY
    name = "acct"
    queue_limit = ACCEPTED_BEFORE_REVOKED
    spam_window = 1.0

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.loading: list[str] = []

    def _refused(self) -> InvalidKey:
        return InvalidKey("Invalid Api Key", account="acct", endpoint="v3/load_model")

    async def load(
        self, model_id: str, spec: Mapping[str, str], *, deadline: float | None = None
    ) -> Accepted:
        if len(self.loading) >= ACCEPTED_BEFORE_REVOKED:
            raise self._refused()
        self.loading.append(model_id)
        return Accepted("model load started", self.clock.now())

    async def read_live(self, *, deadline: float | None = None) -> LiveState:
        if len(self.loading) >= ACCEPTED_BEFORE_REVOKED:
            raise self._refused()
        models = {m: LiveModel(m, Condition.LOADING, "model_loading") for m in self.loading}
        return LiveState("acct", models)


async def test_loads_accepted_before_the_key_was_revoked_stay_accepted() -> None:
    clock = FakeClock()
    recorded: dict[str, LedgerEntry | None] = {}

    async def record(entries: Mapping[str, LedgerEntry | None]) -> None:
        recorded.update(entries)

    changes = tuple(load_change(f"m{n}") for n in range(4))
    run = AccountApply(
        AccountPlan(account="acct", api=ApiKind.COMMUNITY, live_fingerprint="", changes=changes),
        RevokedMidRun(clock),  # type: ignore[arg-type]
        LiveState("acct", {}),
        ApplyOptions(wait=True, timeout=600.0, poll_interval=0.0),
        NullProgress(),
        clock.now() + 600.0,
        record=record,
    )
    await run.run()
    await run.record_outcomes()

    accepted = {"m0", "m1"}
    # the run failed on the key: the report says so for every model
    assert all("Invalid Api Key" in item.message for item in run.items.values()), run.items
    assert {m for m, item in run.items.items() if item.outcome is Outcome.FAILED} >= accepted
    # but the ledger keeps the accepted loads as accepted (in flight), not failed
    for model_id in accepted:
        entry = recorded[model_id]
        assert entry is not None
        assert entry.outcome == "applied", entry
        assert entry.pending is None, entry
