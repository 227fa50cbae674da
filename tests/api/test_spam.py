"""The spam-window guard's table of turns stays cheap however many requests one window holds."""

from __future__ import annotations

import pytest

from reconciler.api.responses import Where
from reconciler.api.secret import ApiKey
from reconciler.api.spam import SpamGuard
from reconciler.clock import FakeClock

pytestmark = pytest.mark.anyio


async def test_a_wave_of_distinct_requests_within_one_window_rebuilds_the_table_rarely(
    anyio_backend: str,
) -> None:
    """It used to be rebuilt on every request once over 4,096 turns: quadratic in a wave."""
    clock = FakeClock()
    guard = SpamGuard(window=30.0, clock=clock)
    where = Where("acct", "v3/load_model", ApiKey("sk-spam-test"))
    rebuilds = 0
    table = guard._next_turn
    for n in range(12_000):  # 1,000 accounts' waves, all in the same window
        await guard.wait_turn(where, "http://api/v3/load_model", {"model_id": f"m{n}"}, 1e9)
        if guard._next_turn is not table:
            rebuilds, table = rebuilds + 1, guard._next_turn
    assert rebuilds <= 2  # once per doubling (before: on every request past 4,096)


async def test_turns_that_passed_are_forgotten(anyio_backend: str) -> None:
    clock = FakeClock()
    guard = SpamGuard(window=1.0, clock=clock)
    where = Where("acct", "v3/finetune_list", ApiKey("sk-spam-test"))
    for n in range(5_000):
        await guard.wait_turn(where, "http://api/x", {"n": n}, 1e9)
        await clock.sleep(0.01)  # 100 requests per window
    assert len(guard._next_turn) <= 4_096
    # and an identical request still waits out its window
    await guard.wait_turn(where, "http://api/x", {"n": 4_999}, 1e9)
    assert clock.now() - 1000.0 == pytest.approx(5_000 * 0.01 - 0.01 + 1.0)
