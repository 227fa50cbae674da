"""The fake clock the tests run apply on: virtual time that keeps the order of real time."""

from __future__ import annotations

import anyio
import pytest

from reconciler.clock import FAKE_EPOCH, SystemClock
from reconciler.clock import FakeClock as Fake

pytestmark = pytest.mark.anyio


async def test_concurrent_sleepers_wake_in_order_at_their_virtual_instants() -> None:
    clock = Fake(start=100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    async with anyio.create_task_group() as group:
        for name, seconds in [("c", 30.0), ("a", 10.0), ("b", 20.0), ("a2", 10.0)]:
            group.start_soon(sleeper, name, seconds)
    assert woke == [("a", 110.0), ("a2", 110.0), ("b", 120.0), ("c", 130.0)]


async def test_time_waits_for_busy_tasks_before_it_jumps() -> None:
    """A task still working (here: yielding to the loop) is not idle: the sleeper waits."""
    clock = Fake(start=0.0)
    seen: list[float] = []

    async def busy_then_sleep() -> None:
        for _ in range(50):
            await anyio.sleep(0)
        seen.append(clock.now())  # the other sleeper has not made time jump yet
        await clock.sleep(1.0)
        seen.append(clock.now())

    async def long_sleeper() -> None:
        await clock.sleep(5.0)
        seen.append(clock.now())

    async with anyio.create_task_group() as group:
        group.start_soon(long_sleeper)
        group.start_soon(busy_then_sleep)
    assert seen == [0.0, 1.0, 5.0]


async def test_a_cancelled_sleeper_does_not_move_time() -> None:
    clock = Fake(start=0.0)
    with anyio.move_on_after(0.01):
        async with anyio.create_task_group() as group:
            group.start_soon(clock.sleep, 1000.0)
            await anyio.sleep(0)
            group.cancel_scope.cancel()
    assert clock.sleepers == 0
    await clock.sleep(2.0)
    assert clock.now() == 2.0


async def test_advance_wakes_the_due_sleepers_and_utcnow_follows() -> None:
    clock = Fake(start=0.0)
    assert clock.utcnow() == FAKE_EPOCH
    clock.advance(90.0)
    assert (clock.utcnow() - FAKE_EPOCH).total_seconds() == 90.0
    await clock.sleep(0)  # a checkpoint, no time
    assert clock.now() == 90.0
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_the_system_clock_is_monotonic_and_aware() -> None:
    clock = SystemClock()
    before = clock.now()
    await clock.sleep(0)
    assert clock.now() >= before
    assert clock.utcnow().tzinfo is not None
