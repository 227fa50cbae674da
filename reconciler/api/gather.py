"""Two calls at once, where the first failure stops the other.

A community listing is two requests (``finetune_list`` and ``model_list``) that do not depend
on each other: running them together halves the time of a read. If one fails the listing is
useless, so the other is cancelled rather than left to use up its retries, and the failure is
raised as it is (one :class:`~reconciler.errors.ReconcilerError`, not an ``ExceptionGroup``).
apply also lists while it writes the next loads' intents (a ledger write, shielded by its
caller from that cancel).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from reconciler.errors import ReconcilerError

A = TypeVar("A")
B = TypeVar("B")


async def both(
    first: Callable[[], Awaitable[A]], second: Callable[[], Awaitable[B]]
) -> tuple[A, B]:
    """Run two calls concurrently; the first :class:`ReconcilerError` cancels the other and is
    raised."""
    firsts: list[A] = []
    seconds: list[B] = []
    failures: list[ReconcilerError] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_collect, first, firsts, failures, group.cancel_scope)
        group.start_soon(_collect, second, seconds, failures, group.cancel_scope)
    if failures:
        raise failures[0]
    return firsts[0], seconds[0]


async def _collect(
    call: Callable[[], Awaitable[A]],
    box: list[A],
    failures: list[ReconcilerError],
    scope: anyio.CancelScope,
) -> None:
    try:
        box.append(await call())
    except ReconcilerError as exc:
        failures.append(exc)
        scope.cancel()
