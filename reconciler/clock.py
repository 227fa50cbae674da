"""The run's clock: monotonic seconds, sleeping, and the wall-clock UTC time of ledger stamps.

apply, the engine and the API client read time only through a :class:`Clock` handed to them
(``ApiAccess.clock``, ``ApiClient(clock=...)``), never ``time.monotonic``, ``datetime.now`` or
``anyio.sleep`` directly. So a test can run apply's scheduling, deadlines, retries and polls on
a :class:`FakeClock` in virtual time: a poll interval of 10 s costs no real second, and what
the test asserts on is the schedule itself, not how long the machine took.

:class:`SystemClock` is the default everywhere, so behaviour outside tests is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio


class Clock(Protocol):
    """What a run needs of time; one instance is shared by everything a run does."""

    def now(self) -> float:
        """Monotonic seconds (an arbitrary origin): for deadlines, intervals, backoffs."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (≤ 0: just let other tasks run), cancellable like ``anyio.sleep``."""
        ...

    def utcnow(self) -> datetime:
        """The wall-clock time as an aware UTC datetime: ledger stamps and plan timing."""
        ...

    def fail_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """A scope cancelled after ``seconds``, raising ``TimeoutError``, like ``anyio.fail_after``.

        A request's total timeout is one: on a fake clock a hung answer times out in virtual
        time, as it would in real time, instead of waiting for a real timer.
        """
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``anyio.sleep``, ``datetime.now(UTC)``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    def fail_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        return anyio.fail_after(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()

#: Where a :class:`FakeClock`'s wall clock starts unless told: a fixed, readable instant.
FAKE_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


class _Wakeable(Protocol):
    """What waits in a :class:`FakeClock`'s queue: a sleeper's event, or a timeout's alarm."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


class _Alarm:
    """The timer of :meth:`FakeClock.fail_after`: when its instant comes, it cancels a scope."""

    def __init__(self, scope: anyio.CancelScope) -> None:
        self._scope = scope
        self._fired = False

    def set(self) -> None:
        self._fired = True
        self._scope.cancel()

    def is_set(self) -> bool:
        return self._fired


class FakeClock:
    """Virtual time for tests: a sleep returns as soon as every other task is idle.

    An "autojump" clock. A task that sleeps is put in a queue ordered by wake-up time (then
    by arrival, so equal wake-ups keep their order). When the event loop has nothing else
    ready to run, not even an I/O callback, time jumps to the earliest wake-up and every
    sleeper due then is woken, in order. Concurrent sleepers therefore wake in the order and
    at the virtual instants that real time would give them, and a test of a 10-minute wait
    takes milliseconds.

    It needs asyncio (the backend of the suite) and reads the loop's queue of ready callbacks,
    a private attribute stable since Python 3.4. Work done in a thread (``anyio.to_thread``)
    is not seen as activity: time may jump while a thread runs, as if that work were slow,
    which is a schedule real time can also give. Requests over an in-process transport
    (``httpx.ASGITransport``) take no virtual time; real sockets would take real time only.
    """

    def __init__(self, start: float = 1000.0, utc_start: datetime = FAKE_EPOCH) -> None:
        self._now = start
        self._start = start
        self._utc_start = utc_start
        self._order = itertools.count()
        # (wake-up, arrival, event or alarm): a heap, earliest wake-up first
        self._sleepers: list[tuple[float, int, _Wakeable]] = []
        # the loop a jump check is queued on: a check queued on a loop that ended (one clock
        # serves several ``anyio.run`` in turn, like CLI commands) must not block the next
        self._checking: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        return self._now

    def utcnow(self) -> datetime:
        return self._utc_start + timedelta(seconds=self._now - self._start)

    def advance(self, seconds: float) -> None:
        """Move time ``seconds`` (≥ 0) ahead at once, waking the sleepers due by then."""
        if seconds < 0:
            raise ValueError("the fake clock cannot go backwards")
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            wake, _, event = heapq.heappop(self._sleepers)
            self._now = max(self._now, wake)
            event.set()
        self._now = target

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock (for tests of the clock)."""
        return sum(1 for *_, event in self._sleepers if not event.is_set())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.sleep(0)
            return
        event = anyio.Event()
        entry = (self._now + seconds, next(self._order), event)
        heapq.heappush(self._sleepers, entry)
        self._check_soon()
        try:
            await event.wait()
        finally:
            if not event.is_set():  # cancelled: leave the queue, so time never jumps for it
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    @contextlib.contextmanager
    def fail_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        """Cancel the block once ``seconds`` of virtual time pass, and raise ``TimeoutError``.

        The alarm waits in the queue of sleepers: time jumps to it only when every task is
        idle, so a block that keeps working is never cut short by a jump.
        """
        with anyio.CancelScope() as scope:
            alarm = _Alarm(scope)
            entry: tuple[float, int, _Wakeable] = (
                self._now + max(0.0, seconds),
                next(self._order),
                alarm,
            )
            heapq.heappush(self._sleepers, entry)
            self._check_soon()
            try:
                yield scope
            finally:
                if not alarm.is_set():
                    self._sleepers.remove(entry)
                    heapq.heapify(self._sleepers)
        if alarm.is_set() and scope.cancelled_caught:
            raise TimeoutError

    def _check_soon(self) -> None:
        loop = asyncio.get_running_loop()
        if self._checking is not loop:
            self._checking = loop
            loop.call_soon(self._jump_if_idle)

    def _jump_if_idle(self) -> None:
        """Runs as a loop callback: jump to the next wake-up if nothing else is ready.

        The callback was queued before the loop's last poll for I/O, whose callbacks come
        after it in the queue: an empty queue here means no task and no I/O is ready.
        """
        self._checking = None
        if not self._sleepers:
            return
        loop = asyncio.get_running_loop()
        if loop._ready:  # type: ignore[attr-defined]  # other work first
            self._check_soon()
            return
        wake = self._sleepers[0][0]
        while self._sleepers and self._sleepers[0][0] <= wake:
            _, _, event = heapq.heappop(self._sleepers)
            event.set()
        self._now = max(self._now, wake)
        if self._sleepers:
            self._check_soon()

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleepers={self.sleepers})"
