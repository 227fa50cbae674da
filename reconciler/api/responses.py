"""The client's error boundary: an httpx exception or a :class:`Reply` in, JSON or an error out.

Every answer of the API crosses :func:`check` and every transport failure
:func:`transport_error`; what leaves is JSON of the documented shape or one error of
:mod:`reconciler.errors` carrying the account and the endpoint. Legacy mode tells errors in the
body (HTTP 200), modern mode also in the status code (api-spec §7.2); both are read, with
``message``/``messege`` and ``tip``/``tips`` alike.

Bodies are read through :class:`BodyReader`, which decompresses them itself with a bound on
the decoded size (a gzip bomb stops at the limit, not at the end of memory), and parsed with
the nesting limit of the JSON decoder turned into an error: anything over a limit, or of the
wrong shape, is a :class:`~reconciler.errors.MalformedResponse` for that account, never another
exception. The key is masked out of the whole decoded answer (field names, model ids,
messages) before anything reads it, so no report, ledger or log line can carry it back.

Nothing here sends requests or decides on retries, and no key, request body or response body
ever reaches an error message.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pydantic

from reconciler.api import wire
from reconciler.api.secret import ApiKey, redact_url_credentials
from reconciler.errors import (
    AnswerOverLimit,
    ApiError,
    ApiUnreachable,
    InvalidKey,
    MalformedResponse,
    ModelNotFound,
    RateLimited,
    ServerError,
    ValidationFailed,
)

M = TypeVar("M", bound=pydantic.BaseModel)

#: Transport errors raised before any byte of the request left: resending is safe.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


#: Errors that say the request's URL itself is unusable: a scheme httpx cannot speak, a URL it
#: cannot parse, a port outside 0-65535 (``OverflowError`` from the socket layer, often inside
#: an ``ExceptionGroup`` of anyio's happy eyeballs), a host name IDNA cannot encode. Nothing was
#: sent, and no retry can help: the same URL fails the same way.
UNUSABLE_URL: tuple[type[Exception], ...] = (
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
    OverflowError,
    UnicodeError,
)


@dataclass(frozen=True, slots=True, repr=False)
class Reply:
    """One answer as the wire delivered it: status, headers, the decoded body, two instants.

    ``headers`` are looked up by lower-case name (both wires give case-insensitive ones).
    ``sent_at`` is when the request was written (or, if the wire cannot tell, when it was
    handed to it), ``answered_at`` when the answer's headers were in, on the client's clock:
    apply learns load times from them (see :class:`~reconciler.api.client.Accepted`).
    """

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]
    body: bytes
    sent_at: float
    answered_at: float

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return self.status_code in _REDIRECTS and "location" in self.headers


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, repr=False)
class Where:
    """Where a request went, and the key to mask out of anything the server says."""

    account: str
    endpoint: str
    key: ApiKey

    def __repr__(self) -> str:
        return f"Where({self.account!r}, {self.endpoint!r})"


def unusable_url_cause(exc: BaseException | None) -> BaseException | None:
    """The error in ``exc`` that says the URL is unusable, if any; else ``None``.

    ``exc`` itself, a leaf of an exception group, or the cause an :class:`ApiUnreachable` was
    raised from: the retry policies use the last to tell "the URL is wrong" (never retried)
    from "the server is down" (retried), since both are an ``ApiUnreachable`` that was not sent.
    """
    if exc is None:
        return None
    if isinstance(exc, UNUSABLE_URL):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := unusable_url_cause(inner)) is not None:
                return found
        return None
    if isinstance(exc, ApiUnreachable):
        return unusable_url_cause(exc.__cause__)
    return None


def never_sent(message: str, where: Where) -> ApiUnreachable:
    """The error for a request that never left this machine: ``answer_lost`` is false."""
    return ApiUnreachable(
        message, answer_lost=False, account=where.account, endpoint=where.endpoint
    )


def unusable_url_error(cause: BaseException, where: Where) -> ApiUnreachable:
    """The error for a request whose URL is unusable: never sent, so ``answer_lost`` is false."""
    detail = outside_text(where, str(cause)) or type(cause).__name__
    return never_sent(f"the API URL is unusable ({detail}); check the API base URL", where)


def transport_error(exc: Exception, where: Where, timeout: float) -> ApiError:
    """The typed error of a transport failure; ``answer_lost`` unless it surely was not sent."""
    if (cause := unusable_url_cause(exc)) is not None:
        return unusable_url_error(cause, where)
    if isinstance(exc, httpx.DecodingError):
        return MalformedResponse(
            "the body could not be decoded", account=where.account, endpoint=where.endpoint
        )
    if isinstance(exc, TimeoutError):
        detail = f"no answer within {timeout:g}s"
    else:
        detail = outside_text(where, str(exc)) or type(exc).__name__
    lost = not isinstance(exc, _NOT_SENT)
    what = "the answer was lost" if lost else "could not reach the API"
    return ApiUnreachable(
        f"{what}: {detail}", answer_lost=lost, account=where.account, endpoint=where.endpoint
    )


def outside_text(where: Where, text: str) -> str:
    """Text that came from outside (the API, a transport error) made fit for an error message.

    The key is masked, URL credentials are dropped, and whitespace runs (newlines included)
    fold into one space, so that an error stays one line whatever the server said.
    """
    return " ".join(redact_url_credentials(where.key.mask(text)).split())


#: Content encodings :class:`BodyReader` decodes; the client asks for these only.
ACCEPT_ENCODING = "gzip, deflate"

#: zlib ``wbits`` per content encoding: gzip framing, and zlib framing (or gzip) for deflate.
_WBITS = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": 32 + zlib.MAX_WBITS,
}

#: The most bytes one step of decompression may produce: bounds memory between checks.
_INFLATE_STEP = 1 << 20


class BodyReader:
    """Collects a response body as it streams in, decoded, and never more than ``limit`` bytes.

    It decompresses the body itself (httpx's decoders inflate a whole network chunk at once,
    a thousandfold for a gzip bomb) in steps of at most :data:`_INFLATE_STEP`, and stops with
    :class:`~reconciler.errors.AnswerOverLimit` as soon as the decoded size passes ``limit``.
    """

    def __init__(self, headers: Mapping[str, str], where: Where, limit: int) -> None:
        self._where = where
        self._limit = limit
        self.body = bytearray()
        encodings = [
            e.strip().lower()
            for e in headers.get("content-encoding", "").split(",")
            if e.strip().lower() not in ("", "identity")
        ]
        if len(encodings) > 1 or (encodings and encodings[0] not in _WBITS):
            raise self._malformed(f"the body's content encoding {', '.join(encodings)!r}")
        self._inflater = zlib.decompressobj(_WBITS[encodings[0]]) if encodings else None
        declared = _header_int(headers.get("content-length"))
        if self._inflater is None and declared is not None and declared > limit:
            raise self._over(f"it declares {declared} bytes")

    @classmethod
    async def read(
        cls, headers: Mapping[str, str], chunks: AsyncIterator[bytes], where: Where, limit: int
    ) -> bytes:
        """The whole decoded body of an answer streaming in as raw ``chunks``."""
        reader = cls(headers, where, limit)
        async for chunk in chunks:
            reader.feed(chunk)
        return reader.finish()

    @classmethod
    def decoded(cls, content: bytes, where: Where, limit: int) -> bytes:
        """``content``, already decoded, checked against ``limit`` like a streamed body."""
        reader = cls({}, where, limit)
        reader.feed(content)
        return reader.finish()

    def feed(self, chunk: bytes) -> None:
        """Add one raw (still encoded) chunk of the body."""
        if self._inflater is None:
            self._add(chunk)
            return
        data = chunk
        try:
            while data and not self._inflater.eof:
                room = min(self._limit - len(self.body) + 1, _INFLATE_STEP)
                self._add(self._inflater.decompress(data, room))
                data = self._inflater.unconsumed_tail
        except zlib.error as exc:
            raise self._malformed("a body that does not decompress") from exc

    def finish(self) -> bytes:
        """The whole decoded body, once the stream has ended."""
        if self._inflater is not None:
            try:
                self._add(self._inflater.flush(_INFLATE_STEP))
            except zlib.error as exc:
                raise self._malformed("a body that does not decompress") from exc
        return bytes(self.body)

    def _add(self, data: bytes) -> None:
        self.body += data
        if len(self.body) > self._limit:
            raise self._over("")

    def _over(self, detail: str) -> AnswerOverLimit:
        suffix = f" ({detail})" if detail else ""
        return AnswerOverLimit(
            f"the answer is larger than the limit of {self._limit} bytes{suffix}",
            account=self._where.account,
            endpoint=self._where.endpoint,
        )

    def _malformed(self, what: str) -> MalformedResponse:
        return MalformedResponse(
            f"{what} cannot be read", account=self._where.account, endpoint=self._where.endpoint
        )


def _header_int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def check(response: Reply, where: Where, spam_window: float) -> Any:
    """The JSON of a successful answer, key masked; any error answer raised as its typed error."""
    try:
        data = load_json(response.body, where.key)
    except RecursionError:
        raise AnswerOverLimit(
            "the answer is nested deeper than the JSON decoder allows",
            account=where.account,
            endpoint=where.endpoint,
        ) from None
    except ValueError as exc:
        raise _status_error(response, where, "the body is not JSON") from exc
    if isinstance(data, dict) and data.get("status") in ("error", "failed"):
        raise _body_error(data, response, where, spam_window)
    if not response.is_success:
        raise _status_error(response, where, "an answer without an error body")
    return data


def load_json(body: bytes, key: ApiKey) -> Any:
    """``body`` decoded as UTF-8 JSON, with ``key`` masked out of every string in it.

    Raises ``ValueError`` for a body that is not UTF-8 JSON, and ``RecursionError`` for one
    nested deeper than the decoder's limit (the C decoder raises it cleanly, at any depth).
    A body without a backslash is masked as text before decoding (a few ``find`` passes);
    one with escapes is masked string by string afterwards, since an escape can spell a key.
    """
    text = body.decode("utf-8-sig")
    if "\\" not in text:
        return json.loads(key.mask(text))
    return _mask_tree(json.loads(text), key)


def _mask_tree(data: Any, key: ApiKey) -> Any:
    """``data`` with ``key`` masked in every string, keys of objects included; no recursion."""
    root: list[Any] = [data]
    stack: list[tuple[list[Any] | dict[str, Any], Any]] = [(root, 0)]
    while stack:
        parent, slot = stack.pop()
        value = parent[slot]
        if isinstance(value, str):
            parent[slot] = key.mask(value)
        elif isinstance(value, list):
            stack.extend((value, i) for i in range(len(value)))
        elif isinstance(value, dict):
            masked = {key.mask(k): v for k, v in value.items()}
            parent[slot] = masked
            stack.extend((masked, k) for k in masked)
    return root[0]


def _status_error(response: Reply, where: Where, detail: str) -> ApiError:
    """The error an HTTP status tells when the body tells nothing usable."""
    code = response.status_code
    kw: dict[str, Any] = {"account": where.account, "endpoint": where.endpoint}
    if response.is_success:
        return MalformedResponse(detail, **kw)
    message = f"{outside_text(where, response.reason_phrase) or 'HTTP error'}: {detail}"
    if response.is_redirect or code == 404:
        return ApiError(f"{message}; check the API base URL", status_code=code, **kw)
    if code == 429:
        seconds = _header_seconds(response.headers.get("retry-after"))
        return RateLimited(message, retry_after=seconds, status_code=code, **kw)
    return _class_for(code, "error", message.lower())(message, status_code=code, **kw)


def _body_error(
    data: dict[str, Any], response: Reply, where: Where, spam_window: float
) -> ApiError:
    """The error an ``{"status": "error"|"failed", …}`` body tells."""
    try:
        body = wire.ErrorBody.model_validate(data)
    except pydantic.ValidationError:
        return _status_error(response, where, "an error body of unexpected shape")
    code = response.status_code
    status_code = code if code >= 400 else None
    kw: dict[str, Any] = {"account": where.account, "endpoint": where.endpoint}
    text = body.text()
    if isinstance(text, dict):
        fields = {
            outside_text(where, name): [outside_text(where, m) for m in msgs]
            for name, msgs in text.items()
        }
        return ValidationFailed(fields, status_code=status_code, **kw)
    message = outside_text(where, text) or "(no message)"
    kw["tip"] = outside_text(where, body.hint())
    cls = _class_for(code, body.status, message.lower())
    if cls is ApiError and code == 404:
        message += "; check the API base URL"
    if cls is RateLimited:
        seconds = _retry_after(body, response, spam_window)
        return RateLimited(message, retry_after=seconds, status_code=status_code, **kw)
    return cls(message, status_code=status_code, **kw)


#: The one table from (HTTP status, body status, lower-cased message) to an error class; the
#: first rule that matches wins. Legacy mode says everything in the body, modern mode also in
#: the status code (api-spec §7.2). A 404 is a missing *model* only when the message names
#: one: a bare ``Not Found`` is a wrong path (a bad base URL), which must not read as "absent".
_ERROR_RULES: tuple[tuple[Callable[[int, str, str], bool], type[ApiError]], ...] = (
    (lambda code, _, text: code == 401 or "invalid api key" in text, InvalidKey),
    (lambda code, _, text: code == 429 or "rate limit" in text, RateLimited),
    (lambda code, _, text: "model" in text and "not found" in text, ModelNotFound),
    (
        lambda code, status, text: code >= 500 or status == "failed" or "try again" in text,
        ServerError,
    ),
)


def _class_for(code: int, status: str, text: str) -> type[ApiError]:
    return next((cls for matches, cls in _ERROR_RULES if matches(code, status, text)), ApiError)


def _retry_after(body: wire.ErrorBody, response: Reply, spam_window: float) -> float | None:
    """Seconds to wait: the body's ``retry_after``, the header, or a probe of the spam window.

    A spam-filter refusal that does not say how long (legacy mode) may come from another run
    that polls the account once per window plus a margin (``apply.SHARE_MARGIN``): the window
    opens for only that margin. Waiting a whole window would miss the opening most of the time,
    so the request is tried again after :data:`SPAM_PROBE_SHARE` of the window; a refused
    request does not extend the window (api-spec §7.7a), so the probes cost the other run
    nothing and one of them lands in the opening.
    """
    if body.retry_after is not None:
        return body.retry_after
    header = _header_seconds(response.headers.get("retry-after"))
    if header is not None:
        return header
    if "spam" not in body.hint().lower():
        return None
    return max(spam_window * SPAM_PROBE_SHARE, MIN_SPAM_PROBE)


#: Share of the spam window between two probes of a refused request whose wait is not told;
#: below the opening ``apply.SHARE_MARGIN - 1`` that a polling run leaves, so a probe hits it.
SPAM_PROBE_SHARE = 0.08
#: Seconds between probes at least, so that ``--spam-window 0`` (no window known) does not
#: turn a refusal into a burst of identical requests.
MIN_SPAM_PROBE = 0.05


def _header_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds; the HTTP-date form is not used by this API."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def parse(model: type[M], data: Any, where: Where) -> M:
    """``data`` as the endpoint's documented shape, else :class:`MalformedResponse`."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = outside_text(  # field names in ``loc`` are the server's text
            where,
            "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                for err in exc.errors(include_input=False, include_url=False)[:3]
            ),
        )
        raise MalformedResponse(
            f"the answer does not have the documented shape ({problems})",
            account=where.account,
            endpoint=where.endpoint,
        ) from exc


def request_body(
    model: type[pydantic.BaseModel], fields: Mapping[str, str], where: Where
) -> dict[str, Any]:
    """A request body checked against its wire model, before anything is sent."""
    try:
        return wire.body_of(model.model_validate(fields))
    except pydantic.ValidationError as exc:
        problems: dict[str, list[str]] = {}
        for err in exc.errors(include_input=False, include_url=False):
            problems.setdefault(".".join(str(p) for p in err["loc"]), []).append(err["msg"])
        # The pydantic error quotes the request, key included: summarised, never chained.
        raise ValidationFailed(problems, account=where.account, endpoint=where.endpoint) from None
