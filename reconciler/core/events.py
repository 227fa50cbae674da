"""The interface through which ``apply`` reports progress, without knowing how it is shown.

``apply`` calls a :class:`ProgressSink`; the renderers implement it (a live terminal line per
account, or plain timestamped lines in CI). Keeping the protocol here lets ``apply`` stay free
of any output library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class ProgressSink(Protocol):
    """Receives progress of a run. Implementations must be cheap and never raise."""

    def account_update(self, account: str, phase: str, counts: Mapping[str, int]) -> None:
        """An account's phase (``planning``, ``applying``, ``waiting``, ``done``, ``failed``)
        and its counts of models by condition or outcome (e.g. ``{"ready": 3, "loading": 2}``)."""

    def event(self, account: str, message: str) -> None:
        """Something worth a line of its own (a load sent, a model ready, a retry)."""

    def close(self) -> None:
        """The run is over: finish the display."""


class NullProgress:
    """A sink that shows nothing (tests, ``-o json``)."""

    def account_update(self, account: str, phase: str, counts: Mapping[str, int]) -> None:
        """Ignore the update."""

    def event(self, account: str, message: str) -> None:
        """Ignore the event."""

    def close(self) -> None:
        """Nothing to finish."""
