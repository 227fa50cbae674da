"""Run a coroutine function from synchronous code, handing its result back cheaply.

``anyio.run`` returns the main coroutine's result through asyncio's runner, which formats the
finished main task, result included, on the way out (``repr`` of the task). For a plan of
100k models that text costs seconds and megabytes and is thrown away. :func:`run_sync` keeps
the result in a holder instead, so the main task finishes with ``None``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def run_sync(func: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(func)``, without asyncio ever formatting the result."""
    holder: list[T] = []

    async def main() -> None:
        holder.append(await func())

    anyio.run(main)
    return holder[0]
