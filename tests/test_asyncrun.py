"""``run_sync`` hands a coroutine's result back without asyncio ever formatting it."""

from __future__ import annotations

from reconciler.asyncrun import run_sync


class _Huge:
    """Stands for a plan of 100k models: formatting it would be the cost."""

    formatted = 0

    def __repr__(self) -> str:
        # asyncio formats the main task through reprlib, which swallows exceptions: count.
        _Huge.formatted += 1
        return "<huge>"


def test_the_result_comes_back_unformatted() -> None:
    huge = _Huge()

    async def work() -> _Huge:
        return huge

    assert run_sync(work) is huge
    assert _Huge.formatted == 0


def test_exceptions_propagate() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    try:
        run_sync(fails)
    except ValueError as exc:
        assert str(exc) == "boom"
    else:  # pragma: no cover
        raise AssertionError("no exception")
