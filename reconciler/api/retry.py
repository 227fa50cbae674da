"""The retry policy of the API client: which failures are retried, how long each retry waits,
and when a call gives up.

Reads change nothing, so every transient error is retried; mutations only when the request
certainly had no effect (rate limited, or never sent), because the engine re-observes the
listing before it resends a load whose answer was lost (design.md §3). A URL that cannot work
fails the same way every time and is never retried.

A wait is the error's own when it has one (a rate limit's ``retry_after``, with a little
jitter), else an exponential backoff. A call has two budgets: ``retry_attempts`` failures, and
``rate_limited_attempts`` refusals by a rate limit (the API answered "not now": a legacy spam
window is probed several times, see ``responses.SPAM_PROBE_SHARE``). It has two deadlines: no
retry starts after the call's deadline, and an API that cannot be reached at all is given up
on after ``ClientSettings.unreachable_deadline``, whatever the call's deadline.

:func:`retrying` is a plain loop over the run's clock rather than a retry library: every wait
is slept on :class:`~reconciler.clock.Clock` and every deadline read from it, so a test on a
``FakeClock`` takes no real time. (tenacity's ``stop_before_delay`` times a call with
``time.monotonic`` itself, which a fake clock cannot move; stamina's backoff had to be
mirrored here to judge a wait against the deadline before sleeping it.) The loop decides each
wait first and judges that very wait against the deadline, so there is no formula to mirror.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from reconciler.api.responses import Where, never_sent, unusable_url_cause
from reconciler.api.settings import ClientSettings
from reconciler.api.spam import PastDeadline
from reconciler.clock import Clock
from reconciler.errors import (
    AnswerOverLimit,
    ApiError,
    ApiUnreachable,
    RateLimited,
    TransientError,
)

log = logging.getLogger("reconciler.api.retry")

A = TypeVar("A")

#: What a policy says of a failure: ``False`` = raise it, ``True`` = retry after the
#: exponential backoff, a float = retry after that many seconds.
Verdict = bool | float
Policy = Callable[[Exception], Verdict]

#: Extra random wait on top of a rate limit's ``retry_after``: at most this many seconds, and
#: at most :data:`RATE_LIMIT_JITTER_SHARE` of the wait, so that a short wait (a spam window
#: about to open, a probe) still lands inside the opening another run leaves between polls.
RATE_LIMIT_JITTER = 1.0
RATE_LIMIT_JITTER_SHARE = 0.05

_waits_skipped = False


@contextmanager
def waits_skipped(skip: bool = True) -> Iterator[None]:
    """For tests of the client's answers on real time: retry at once instead of waiting.

    Each wait is still chosen, counted and judged against the deadlines as if it had been
    slept; only the sleep itself is left out (the clock does not move for it). A test that
    checks the waits themselves runs with ``waits_skipped(False)``, or on a ``FakeClock``.
    """
    global _waits_skipped
    before, _waits_skipped = _waits_skipped, skip
    try:
        yield
    finally:
        _waits_skipped = before


def read_backoff(exc: Exception) -> Verdict:
    """Reads change nothing: retry every transient error, a rate limit after ``retry_after``.

    A URL that cannot work is the exception: it fails the same way every time, so it is raised
    at once instead of spending the whole retry budget on it.
    """
    if unusable_url_cause(exc) is not None or isinstance(exc, AnswerOverLimit):
        return False
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        jitter = min(RATE_LIMIT_JITTER, RATE_LIMIT_JITTER_SHARE * exc.retry_after)
        return exc.retry_after + random.uniform(0, jitter)
    return isinstance(exc, TransientError)


def mutation_backoff(exc: Exception) -> Verdict:
    """Mutations are retried only when the request certainly had no effect.

    A rate limit refused the request, and a connection that never opened sent nothing; any
    other failure (an answer lost after sending, a 5xx, a malformed body) may hide a load that
    did start, so it is raised for the caller to re-observe the listing first.
    """
    if isinstance(exc, RateLimited):
        return read_backoff(exc)
    return isinstance(exc, ApiUnreachable) and not exc.answer_lost and read_backoff(exc) is True


def backoff(settings: ClientSettings, attempt: int) -> float:
    """The wait after failed attempt number ``attempt`` (from 1) when the error names none.

    Doubling from ``retry_wait_initial``, plus up to ``retry_wait_initial`` of random jitter
    (so that accounts failing together do not retry together), at most ``retry_wait_max``.
    """
    exponential = settings.retry_wait_initial * 2.0 ** min(attempt - 1, 64)
    jitter = random.uniform(0, settings.retry_wait_initial)
    return min(settings.retry_wait_max, exponential + jitter)


@dataclass
class _Budget:
    """What one call may still spend: failures, refusals, and time until its deadlines."""

    settings: ClientSettings
    clock: Clock
    deadline_at: float  # no retry starts after this instant of the clock
    unreachable_at: float  # nor, after a transport error, after this one
    attempts: int = 0
    failures: int = 0
    refusals: int = 0

    def wait_after(self, exc: ApiError, policy: Policy) -> float | None:
        """Seconds to wait before retrying after ``exc``, or ``None``: the call gives up."""
        self.attempts += 1
        verdict = policy(exc)
        if verdict is False:
            return None
        if isinstance(exc, RateLimited):
            self.refusals += 1
            if self.refusals > self.settings.rate_limited_attempts:
                return None
        else:
            self.failures += 1
            if self.failures >= self.settings.retry_attempts:
                return None
        wait = backoff(self.settings, self.attempts) if verdict is True else float(verdict)
        until = self.deadline_at
        if isinstance(exc, ApiUnreachable):
            until = min(until, self.unreachable_at)
        return wait if self.clock.now() + wait <= until else None


async def retrying(
    policy: Policy,
    call: Callable[[float], Awaitable[A]],
    where: Where,
    settings: ClientSettings,
    clock: Clock,
    deadline: float | None = None,
) -> A:
    """``call(deadline_at)`` retried as ``policy`` says, until ``deadline_at`` at the latest.

    ``deadline_at`` is the earlier of ``settings.deadline`` from now and the caller's
    ``deadline`` (an instant of ``clock``); a retry whose wait would end after it is not made,
    and the error is raised instead. A transport error (:class:`ApiUnreachable`) has the
    earlier bound ``settings.unreachable_deadline`` from now. The first attempt is always
    made; if the spam window would hold an attempt past the deadline (:class:`PastDeadline`),
    the last error is raised (or, if there is none yet, a "deadline passed" error).
    """
    started = clock.now()
    deadline_at = started + settings.deadline
    if deadline is not None:
        deadline_at = min(deadline_at, deadline)
    budget = _Budget(settings, clock, deadline_at, started + settings.unreachable_deadline)
    last: ApiError | None = None
    while True:
        try:
            return await call(deadline_at)
        except PastDeadline as exc:
            held = exc.wait
            break
        except ApiError as exc:
            last = exc
            wait = budget.wait_after(exc, policy)
            if wait is None:
                if isinstance(exc, ApiUnreachable):
                    elapsed = clock.now() - started
                    raise _gave_up(exc, budget.attempts, elapsed) from exc.__cause__
                raise
        log.debug(
            "%s POST %s: %s, attempt %d; retrying in %.1fs",
            where.account,
            where.endpoint,
            type(last).__name__,
            budget.attempts,
            wait,
        )
        await clock.sleep(0.0 if _waits_skipped else wait)
    if isinstance(last, ApiUnreachable):
        raise _gave_up(last, budget.attempts, clock.now() - started) from last.__cause__
    if last is not None:
        raise last
    raise never_sent(f"deadline passed: the spam window holds this request {held:.1f}s more", where)


def _gave_up(exc: ApiUnreachable, attempts: int, elapsed: float) -> ApiUnreachable:
    """``exc`` with how long the call tried, so that the user sees why it gave up when it did."""
    tries = "1 attempt" if attempts <= 1 else f"{attempts} attempts"
    return ApiUnreachable(
        f"{exc.message} (gave up after {tries} in {elapsed:.1f}s)",
        answer_lost=exc.answer_lost,
        account=exc.account,
        endpoint=exc.endpoint,
    )
