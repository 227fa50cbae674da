"""The API's answers, and the two error transports they travel by (api-spec §7.2).

Handlers return a :class:`Reply`: a JSON body and the *kind* of answer it is. Only here is the
kind turned into an HTTP status: ``legacy`` sends every answer with HTTP 200 (the client must
read the body's ``status``), ``modern`` sends the same bodies with 400/401/404/429/500, and a
429 also carries ``retry_after`` (plus a ``Retry-After`` header). Every body is built through
the shared wire models, so the emulator cannot answer a shape the client does not read.

No routing and no state here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from starlette.responses import Response

from reconciler.api.wire import ErrorBody
from reconciler.emulator import assumptions as assumed
from reconciler.emulator.config import ErrorMode

Kind = Literal["ok", "validation", "invalid_key", "not_found", "rate_limited", "failed"]


@dataclass(frozen=True)
class Reply:
    """One answer of the API: its JSON body and what kind of answer it is."""

    body: Any
    kind: Kind = "ok"
    retry_after: float | None = None
    #: The body's JSON text when it was built in pieces (see :func:`prerendered`); ``body``
    #: is then ``None``.
    raw: str | None = None

    def status_code(self, mode: ErrorMode) -> int:
        """The HTTP status this answer travels with in ``mode``."""
        return assumed.MODERN_STATUS[self.kind] if mode == "modern" else 200

    def text(self) -> str:
        """The body as the JSON text sent on the wire."""
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, separators=(",", ":"))

    def render(self, mode: ErrorMode) -> Response:
        """The HTTP response for this answer in ``mode``."""
        code = self.status_code(mode)
        headers = {"Retry-After": str(self.retry_after)} if code == 429 and self.retry_after else {}
        return Response(self.text(), code, headers, media_type="application/json")


def ok(body: BaseModel | Sequence[BaseModel]) -> Reply:
    """A success: a wire model (or a bare array of them) as JSON."""
    if not isinstance(body, BaseModel):
        return Reply([item.model_dump(mode="json") for item in body])
    return Reply(body.model_dump(mode="json", exclude_none=True))


def prerendered(text: str) -> Reply:
    """A success whose JSON text is already built (large listings); its ``body`` is ``None``."""
    return Reply(None, raw=text)


def _error(kind: Kind, retry_after: float | None = None, **fields: Any) -> Reply:
    body = ErrorBody.model_validate({"status": "error", **fields}).model_dump(
        mode="json", exclude_none=True
    )
    if retry_after is not None:
        body["retry_after"] = retry_after  # an int at time scale 1, see real_seconds
    return Reply(body, kind, retry_after)


def real_seconds(emulated: float, time_scale: float) -> float:
    """A wait of ``emulated`` seconds told in the client's (real) seconds, rounded up.

    At time scale 1 this is the documented whole number of seconds (at least 1). Under a faster
    clock a whole real second would be many emulated ones, so the wait is told to the
    millisecond instead (an emulator decision, see ``retry-after-real`` in the assumptions):
    a client that waits exactly ``retry_after`` lands when the window opens, not a minute of
    emulated time after it.
    """
    if time_scale == 1:
        return max(1, math.ceil(emulated))
    return max(0.001, math.ceil(emulated / time_scale * 1000) / 1000)


def invalid_key() -> Reply:
    """The documented ``Invalid Api Key`` body with its ``tip``."""
    return _error("invalid_key", message=assumed.INVALID_KEY, tip=assumed.INVALID_KEY_TIP)


def validation_failed(fields: dict[str, list[str]]) -> Reply:
    """A Laravel-style ``{"message": {field: [texts]}}`` body."""
    return _error("validation", message=fields)


def not_found(message: str) -> Reply:
    """``Model id not found`` (community) or ``Model not found on server`` (enterprise)."""
    return _error("not_found", message=message)


def spam_limited(seconds_left: float, mode: ErrorMode, time_scale: float = 1.0) -> Reply:
    """The documented spam-filter body (``tips``); modern mode adds ``retry_after``."""
    retry = real_seconds(seconds_left, time_scale) if mode == "modern" else None
    return _error("rate_limited", retry, message=assumed.SPAM_MESSAGE, tips=assumed.SPAM_TIPS)


def queue_limited(limit: int, time_scale: float = 1.0) -> Reply:
    """The documented queue-limit body, with ``retry_after`` in both modes."""
    message = assumed.QUEUE_LIMIT_MESSAGE.format(limit=limit)
    retry = real_seconds(assumed.QUEUE_RETRY_AFTER, time_scale)
    return _error("rate_limited", retry, message=message)


def failed_try_again() -> Reply:
    """The documented ``{"status":"failed","id":"","message":"Failed, Try Again","output":""}``."""
    body = {"status": "failed", "id": "", "message": assumed.FAILED_TRY_AGAIN, "output": ""}
    return Reply(
        ErrorBody.model_validate(body).model_dump(mode="json", exclude_none=True), "failed"
    )
