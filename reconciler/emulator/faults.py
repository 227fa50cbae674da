"""Injected faults: latency, 5xx answers, hung and malformed answers, ``Failed, Try Again``.

The reconciler must survive a flaky API, and its tests must see the same flakiness on every
run: every API request draws exactly two numbers from one ``random.Random(seed)``, whatever the
rates are, so the same seed and the same requests give the same faults. The first draw picks
the fault (by cumulative rate, in the order error, hang, malformed, failed); the second picks
its variant (which 5xx, which kind of garbage).

This module decides faults and builds their bodies; the app decides when to apply them.
"""

from __future__ import annotations

import enum
import random
import threading
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

_ERROR_CODES = (500, 502, 503)
_ERROR_TEXTS = {500: "Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
_HTML_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class FaultSettings(BaseModel):
    """The body of ``POST /_emulator/faults``; every field optional, rates in ``[0, 1]``."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0, ge=0)
    error_rate: float = Field(default=0, ge=0, le=1)
    hang_rate: float = Field(default=0, ge=0, le=1)
    malformed_rate: float = Field(default=0, ge=0, le=1)
    failed_rate: float = Field(default=0, ge=0, le=1)
    fail_urls: list[str] = Field(default_factory=list)
    seed: int | None = None

    @model_validator(mode="after")
    def _rates_fit(self) -> FaultSettings:
        if self.error_rate + self.hang_rate + self.malformed_rate + self.failed_rate > 1:
            raise ValueError("error_rate + hang_rate + malformed_rate + failed_rate exceeds 1")
        return self


class FaultKind(enum.Enum):
    """What happens to one API request."""

    NONE = "none"
    ERROR = "error"  # an HTTP 500/502/503, before processing
    HANG = "hang"  # processed, then the answer is held
    MALFORMED = "malformed"  # processed, then the answer is mangled
    FAILED = "failed"  # the documented ``Failed, Try Again`` body, before processing


@dataclass(frozen=True)
class Fault:
    """The fault drawn for one request: its kind, and a number in ``[0, 1)`` picking a variant."""

    kind: FaultKind
    variant: float = 0.0

    @property
    def error_code(self) -> int:
        """The HTTP status of an ``ERROR`` fault."""
        return _ERROR_CODES[min(int(self.variant * len(_ERROR_CODES)), len(_ERROR_CODES) - 1)]

    @property
    def as_html(self) -> bool:
        """Whether a ``MALFORMED`` fault sends an HTML page (else truncated JSON)."""
        return self.variant < 0.5


class FaultInjector:
    """Draws a :class:`Fault` per API request from the configured rates and one seeded RNG."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.settings = FaultSettings(seed=seed)
        self._rng = random.Random(seed)

    def configure(self, update: FaultSettings, fields: set[str]) -> None:
        """Apply the ``fields`` set in ``update``; a new ``seed`` restarts the sequence."""
        with self._lock:
            merged = self.settings.model_dump() | update.model_dump(include=fields)
            self.settings = FaultSettings.model_validate(merged)
            if "seed" in fields:
                self._rng = random.Random(update.seed)

    def reset(self, seed: int | None) -> None:
        """No faults, and the sequence restarted from ``seed``."""
        with self._lock:
            self.settings = FaultSettings(seed=seed)
            self._rng = random.Random(seed)

    def draw(self) -> Fault:
        """The fault for the next request (two draws, always, to keep sequences aligned)."""
        with self._lock:
            pick, variant = self._rng.random(), self._rng.random()
            rates = self.settings
        bound = 0.0
        for kind, rate in (
            (FaultKind.ERROR, rates.error_rate),
            (FaultKind.HANG, rates.hang_rate),
            (FaultKind.MALFORMED, rates.malformed_rate),
            (FaultKind.FAILED, rates.failed_rate),
        ):
            bound += rate
            if pick < bound:
                return Fault(kind, variant)
        return Fault(FaultKind.NONE, variant)

    def fails(self, url: str) -> bool:
        """Whether a load of ``url`` is told to end ``model_failed``."""
        return url in self.settings.fail_urls


def error_body(code: int) -> dict[str, str]:
    """The JSON body of an injected 5xx answer."""
    return {"status": "error", "message": _ERROR_TEXTS[code]}


def malformed_text(fault: Fault, json_text: str) -> tuple[str, str]:
    """A mangled answer and its media type: a proxy's HTML page, or the JSON cut in half."""
    if fault.as_html:
        return _HTML_PAGE, "text/html"
    return json_text[: max(1, len(json_text) // 2)], "application/json"
