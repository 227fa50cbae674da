"""The retry loop on virtual time: the waits it sleeps, its two budgets and its deadlines.

Every wait is slept on a :class:`FakeClock`, so these tests check the schedule itself (when
each attempt starts) without taking the real seconds it spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from reconciler.api.client import ClientSettings
from reconciler.api.responses import Where
from reconciler.api.retry import (
    RATE_LIMIT_JITTER,
    Policy,
    mutation_backoff,
    read_backoff,
    retrying,
    waits_skipped,
)
from reconciler.api.secret import ApiKey
from reconciler.api.spam import PastDeadline
from reconciler.clock import FakeClock
from reconciler.errors import ApiError, ApiUnreachable, RateLimited, ServerError

pytestmark = pytest.mark.anyio

#: Rounding of the fake clock's sums of floats (1000.0 + many waits).
EPS = 1e-6


def where() -> Where:
    """Made per test: a key kept alive for the whole process would be masked in every test's
    output (``secret.redact`` masks every live key)."""
    return Where("acct", "v1/enterprise/get_all_models", ApiKey("Zq7Xw3Rk9Vt2Lp5N"))


SETTINGS = ClientSettings(
    deadline=300.0,
    unreachable_deadline=15.0,
    retry_attempts=6,
    rate_limited_attempts=50,
    retry_wait_initial=1.0,
    retry_wait_max=30.0,
)


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    """Overrides the suite's skipping of waits: here every wait is slept, in virtual time."""
    with waits_skipped(False):
        yield


class Script:
    """A call that fails with ``errors`` in turn (the last one forever), noting each start."""

    def __init__(self, clock: FakeClock, errors: list[Exception], succeed_after: int = -1):
        self.clock = clock
        self.errors = errors
        self.succeed_after = succeed_after
        self.starts: list[float] = []
        self.not_after: list[float] = []

    async def __call__(self, not_after: float) -> str:
        self.starts.append(self.clock.now())
        self.not_after.append(not_after)
        if len(self.starts) - 1 == self.succeed_after:
            return "ok"
        raise self.errors[min(len(self.starts), len(self.errors)) - 1]

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]


async def run(
    script: Script,
    settings: ClientSettings = SETTINGS,
    policy: Policy = read_backoff,
    deadline: float | None = None,
) -> str:
    return await retrying(policy, script, where(), settings, script.clock, deadline)


async def test_refusals_by_a_rate_limit_do_not_use_up_the_failure_budget() -> None:
    clock = FakeClock()
    errors: list[Exception] = [RateLimited("x", retry_after=5)] * 20 + [ServerError("x")]
    script = Script(clock, errors, succeed_after=21)
    assert await run(script, replace(SETTINGS, retry_attempts=2)) == "ok"
    assert len(script.starts) == 22
    jitter = min(RATE_LIMIT_JITTER, 0.05 * 5)
    assert all(5 - EPS <= gap <= 5 + jitter + EPS for gap in script.gaps()[:20])


async def test_refusals_have_their_own_budget() -> None:
    script = Script(FakeClock(), [RateLimited("x", retry_after=1)])
    with pytest.raises(RateLimited):
        await run(script, replace(SETTINGS, rate_limited_attempts=3))
    assert len(script.starts) == 1 + 3


async def test_failures_back_off_exponentially_with_bounded_jitter() -> None:
    script = Script(FakeClock(), [ServerError("x")])
    settings = replace(SETTINGS, retry_attempts=7, retry_wait_initial=1.0, retry_wait_max=10.0)
    with pytest.raises(ServerError):
        await run(script, settings)
    assert len(script.starts) == 7
    for attempt, gap in enumerate(script.gaps(), start=1):
        exponential = 2.0 ** (attempt - 1)
        assert min(exponential, 10.0) - EPS <= gap <= min(exponential + 1.0, 10.0) + EPS


async def test_no_retry_starts_after_the_callers_deadline() -> None:
    clock = FakeClock()
    script = Script(clock, [RateLimited("x", retry_after=30)])
    started = clock.now()
    with pytest.raises(RateLimited):
        await run(script, deadline=started + 100)
    assert len(script.starts) == 4  # at 0, ~30, ~60, ~90; the next would start after 120
    assert script.starts[-1] <= started + 100 + EPS
    assert clock.now() <= started + 100 + EPS  # it did not sleep a wait it would not use
    assert script.not_after == [started + 100] * 4


async def test_the_settings_deadline_bounds_a_call_without_one() -> None:
    clock = FakeClock()
    script = Script(clock, [ServerError("x")])
    started = clock.now()
    settings = replace(SETTINGS, deadline=20.0, retry_attempts=1000, retry_wait_max=4.0)
    with pytest.raises(ServerError):
        await run(script, settings)
    assert script.starts[-1] <= started + 20 + EPS
    assert script.not_after[0] == started + 20
    assert len(script.starts) >= 5


async def test_an_unreachable_api_is_given_up_after_its_own_deadline() -> None:
    clock = FakeClock()
    script = Script(clock, [ApiUnreachable("could not reach the API", answer_lost=False)])
    started = clock.now()
    settings = replace(SETTINGS, retry_attempts=1000, unreachable_deadline=15.0)
    with pytest.raises(ApiUnreachable, match=r"gave up after \d+ attempts in") as caught:
        await run(script, settings, policy=mutation_backoff)
    assert clock.now() - started <= 15.0 + EPS
    assert script.starts[-1] >= started + 7 - EPS  # waits of 1, 2, 4 s at least before
    assert caught.value.answer_lost is False


async def test_a_rate_limit_is_waited_out_past_the_unreachable_deadline() -> None:
    clock = FakeClock()
    script = Script(clock, [RateLimited("x", retry_after=10)], succeed_after=3)
    assert await run(script, replace(SETTINGS, unreachable_deadline=15.0)) == "ok"
    assert script.starts[-1] - script.starts[0] >= 30 - EPS


@pytest.mark.parametrize("policy", [read_backoff, mutation_backoff])
async def test_an_error_the_policy_does_not_retry_is_raised_at_once(policy: Policy) -> None:
    script = Script(FakeClock(), [ApiError("permanent")])
    with pytest.raises(ApiError, match="permanent"):
        await run(script, policy=policy)
    assert len(script.starts) == 1


async def test_a_spam_window_past_the_deadline_raises_the_last_error() -> None:
    clock = FakeClock()
    script = Script(clock, [ServerError("the last"), PastDeadline(where(), 12.0)])
    with pytest.raises(ServerError, match="the last"):
        await run(script)
    assert len(script.starts) == 2


async def test_a_spam_window_past_the_deadline_before_any_error_says_so() -> None:
    script = Script(FakeClock(), [PastDeadline(where(), 12.0)])
    with pytest.raises(ApiUnreachable, match=r"deadline passed.*12\.0s more") as caught:
        await run(script)
    assert (caught.value.account, caught.value.endpoint) == ("acct", where().endpoint)
    assert caught.value.answer_lost is False
