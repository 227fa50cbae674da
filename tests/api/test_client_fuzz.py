"""A seeded fuzz test of the client's answer handling (issue 14).

Any bytes as a body (raw, JSON of any shape, compressed or claiming to be), any status, any
headers: every call ends with a result or an :class:`~reconciler.errors.ApiError`, never
another exception, and never with the key in the error's text.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.api.client import AccountClient, ApiClient, ClientSettings
from reconciler.api.secret import ApiKey
from reconciler.errors import ApiError

CANARY = "CANARY-9f8e7d-SECRET"  # the conftest's canary: strategies are built at import

SETTINGS = ClientSettings(
    request_timeout=2.0,
    spam_window=0.0,
    retry_attempts=2,
    retry_wait_initial=0.0,
    retry_wait_max=0.0,
    max_body_bytes=64 * 1024,
)


class Body(httpx.AsyncByteStream):
    """A body streamed in two pieces, so the client reads it as it would from the network."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        half = len(self.data) // 2
        yield self.data[:half]
        yield self.data[half:]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["success", "error", "failed", "model_ready", CANARY, "Rate limit"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["status", "message", "messege", "tip", "tips", "retry_after", "data", "models"]
            )
            | st.sampled_from(["model_id", "load_data", CANARY])
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A body and the content encoding it claims (true or not)."""
    kind = draw(st.sampled_from(["json", "bytes", "nested", "gzip", "deflate", "lie"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300)), None
    if kind == "nested":
        depth = draw(st.integers(1, 5000))
        return b"[" * depth + b"]" * draw(st.integers(0, depth)), None
    text = json.dumps(draw(json_values)).encode()
    if kind == "gzip":
        return gzip.compress(text), "gzip"
    if kind == "deflate":
        return zlib.compress(text), "deflate"
    if kind == "lie":
        return text, draw(st.sampled_from(["gzip", "deflate", "br", "zstd", "gzip, deflate"]))
    return text, None


header_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=126), max_size=20
) | st.sampled_from(["0", "-1", "1e309", "nan", "30", "99999999999999999999"])
headers = st.dictionaries(
    st.sampled_from(["retry-after", "content-type", "content-length", "x-anything"]),
    header_values,
    max_size=3,
)
statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 404, 422, 429, 500, 503]) | st.integers(
    100, 599
)
calls: st.SearchStrategy[tuple[str, Callable[[AccountClient], Awaitable[Any]]]] = st.sampled_from(
    [
        ("community", lambda a: a.read_live()),
        ("enterprise", lambda a: a.read_live()),
        ("enterprise", lambda a: a.verify("m1")),
        ("community", lambda a: a.reload("m1")),
        ("enterprise", lambda a: a.delete("m1")),
        (
            "community",
            lambda a: a.load(
                "m1",
                {
                    "url": "org/m1",
                    "model_format": "diffusers",
                    "model_category": "stable_diffusion",
                    "model_visibility": "private",
                    "model_name": "M1",
                },
            ),
        ),
    ]
)


@settings(
    max_examples=300,
    derandomize=True,  # seeded: the same examples on every run
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    body=bodies(),
    status=statuses,
    extra=headers,
    call=calls,
    reason=st.binary(max_size=30) | st.just(CANARY.encode()),
)
def test_any_answer_is_a_result_or_an_api_error(
    body: tuple[bytes, str | None],
    status: int,
    extra: dict[str, str],
    call: tuple[str, Callable[[AccountClient], Awaitable[Any]]],
    reason: bytes,
) -> None:
    data, encoding = body
    answer_headers = {**extra, **({"content-encoding": encoding} if encoding else {})}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            headers=answer_headers,
            stream=Body(data),
            extensions={"reason_phrase": reason},
        )

    api, make_call = call

    async def run() -> None:
        async with ApiClient(SETTINGS, httpx.MockTransport(handler)) as client:
            account = client.account("acct", api, ApiKey(CANARY), "http://api.test/api/")
            try:
                with anyio.fail_after(30):
                    await make_call(account)
            except ApiError as exc:
                assert CANARY.lower() not in str(exc).lower()
                assert CANARY.lower() not in getattr(exc, "tip", "").lower()
                assert "\n" not in exc.message

    anyio.run(run)
