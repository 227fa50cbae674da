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


async def test_fail_after_times_a_stuck_block_out_at_its_virtual_instant() -> None:
    """A block waiting longer than its timeout is cancelled at the timeout, in virtual time,
    and raises ``TimeoutError`` like ``anyio.fail_after``; a sleeper due earlier wakes first."""
    clock = Fake(start=0.0)
    woke: list[float] = []

    async def early() -> None:
        await clock.sleep(2.0)
        woke.append(clock.now())

    async with anyio.create_task_group() as group:
        group.start_soon(early)
        with pytest.raises(TimeoutError), clock.fail_after(5.0):
            await clock.sleep(60.0)
        woke.append(clock.now())
    assert woke == [2.0, 5.0]
    assert clock.sleepers == 0


async def test_fail_after_leaves_a_block_done_in_time_alone() -> None:
    clock = Fake(start=0.0)
    with clock.fail_after(5.0) as scope:
        await clock.sleep(1.0)
    assert not scope.cancelled_caught
    assert clock.sleepers == 0  # the alarm left the queue: time does not jump to it
    await clock.sleep(0.5)
    assert clock.now() == 1.5


async def test_the_system_clock_fails_after_in_real_time() -> None:
    with pytest.raises(TimeoutError), SystemClock().fail_after(0.01):
        await anyio.sleep(1.0)


def test_one_fake_clock_serves_event_loops_in_turn() -> None:
    """CLI commands each run their own event loop on one test clock: a jump check queued on
    a loop that has ended does not block the next loop's sleepers."""
    clock = Fake(start=0.0)

    async def nap() -> None:
        await clock.sleep(3.0)

    for _ in range(3):
        anyio.run(nap)
    assert clock.now() == 9.0
