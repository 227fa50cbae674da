"""What the emulator remembers about requests: the spam filter's memory and request counters.

The legacy API rejects the same request sent again within 30 s ("spam filter is enabled");
:class:`SpamFilter` reproduces that on emulated time so a client that polls too eagerly is
caught in tests. :class:`RequestCounters` lets tests count how many calls a run made, per
endpoint and per account (``GET /_emulator/requests``), e.g. to prove a poller lists each
account once per interval or that no load was sent twice.

Neither builds HTTP answers; the app does.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from typing import Any

_PRUNE_AT = 4096


class SpamFilter:
    """Remembers when each identical request (path + canonical JSON body) was last accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accepted: dict[str, float] = {}
        self._prune_at = _PRUNE_AT

    def check(self, fingerprint: str, now: float, window: float) -> float:
        """Seconds left before this request (its :func:`fingerprint`) may be sent again.

        0 means it may be taken now. The window runs from the last *accepted* identical
        request (an assumption): a client that keeps retrying inside the window does not lock
        itself out for longer. Nothing is recorded here: :meth:`accept` does, once the request
        was taken.
        """
        with self._lock:
            last = self._accepted.get(fingerprint)
        if last is not None and now - last < window:
            return window - (now - last)
        return 0.0

    def accept(self, fingerprint: str, now: float, window: float) -> None:
        """Start this request's window: it passed the filter and was not refused."""
        with self._lock:
            self._accepted[fingerprint] = now
            if len(self._accepted) >= self._prune_at:
                self._prune(now, window)

    def clear(self) -> None:
        """Forget every request."""
        with self._lock:
            self._accepted.clear()

    def _prune(self, now: float, window: float) -> None:
        """Forget windows that are over, once the table has doubled since the last time (not on
        every request past a fixed size: a wave of over 4,096 distinct requests within one
        window made that quadratic, and the emulator what a benchmark measured)."""
        self._accepted = {fp: at for fp, at in self._accepted.items() if now - at < window}
        self._prune_at = max(_PRUNE_AT, 2 * len(self._accepted))


def fingerprint(endpoint: str, body: dict[str, Any]) -> str:
    """What makes two requests identical to the spam filter: the path and the JSON body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{endpoint}\n{canonical}".encode()).hexdigest()


class RequestCounters:
    """How many API requests arrived, per endpoint and per account and endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: Counter[str] = Counter()
        self._accounts: dict[str, Counter[str]] = {}

    def count(self, endpoint: str) -> None:
        """Count a request as it arrives, before anything can reject it."""
        with self._lock:
            self._endpoints[endpoint] += 1

    def attribute(self, account: str, endpoint: str) -> None:
        """Count a request again under the account its key belongs to."""
        with self._lock:
            self._accounts.setdefault(account, Counter())[endpoint] += 1

    def clear(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._endpoints.clear()
            self._accounts.clear()

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "endpoints": {path: n}, "accounts": {name: {path: n}}}``."""
        with self._lock:
            return {
                "total": sum(self._endpoints.values()),
                "endpoints": dict(sorted(self._endpoints.items())),
                "accounts": {
                    name: dict(sorted(counts.items()))
                    for name, counts in sorted(self._accounts.items())
                },
            }
