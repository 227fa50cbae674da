"""The emulated clock: real time sped up by ``time_scale``, plus whatever tests advance it by.

Every timed behaviour of the emulator (loads taking 60 s, reloads 120 s, eviction after 7 days,
the 30 s spam window) reads this clock and nothing else, so a test can jump a week ahead in one
call instead of sleeping, and a demo can run an hour in a minute. Emulated time only moves
forward.

The clock does not schedule anything; the state computes transitions from it lazily.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


class EmulatedClock:
    """Emulated seconds since the epoch: ``start + scale × real elapsed + advanced``."""

    def __init__(
        self,
        time_scale: float = 1.0,
        start: float | None = None,
        real: Callable[[], float] = time.monotonic,
    ) -> None:
        self._real = real
        self._scale = time_scale
        self._lock = threading.Lock()
        self._origin = time.time() if start is None else start
        self._real_origin = real()

    @property
    def time_scale(self) -> float:
        """Emulated seconds per real second."""
        return self._scale

    def now(self) -> float:
        """The emulated time, in seconds since the epoch."""
        with self._lock:
            return self._origin + (self._real() - self._real_origin) * self._scale

    def now_datetime(self) -> datetime:
        """The emulated time as an aware UTC datetime."""
        return to_datetime(self.now())

    def advance(self, seconds: float) -> float:
        """Jump ``seconds`` (≥ 0) ahead and return the new emulated time."""
        if seconds < 0:
            raise ValueError("the emulated clock cannot go backwards")
        with self._lock:
            self._origin += seconds
        return self.now()

    def catch_up(self, at_least: float) -> None:
        """Move forward to ``at_least`` if behind it: a restored state is never in the future."""
        behind = at_least - self.now()
        if behind > 0:
            self.advance(behind)


def to_datetime(seconds: float) -> datetime:
    """Emulated epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def iso(seconds: float | None) -> str | None:
    """Emulated epoch seconds as ISO 8601 (UTC), for the control surface; ``None`` stays."""
    return None if seconds is None else to_datetime(seconds).isoformat()
