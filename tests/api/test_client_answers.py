"""Hostile or broken answers (issue 14): bounded in size, depth and time, keys masked in them.

Every answer is read with limits: its decoded size (a gzip bomb stops at the limit), its JSON
nesting (the decoder's limit is an error, not a ``RecursionError``), and its total time (a
trickling body is cut at ``request_timeout``). Whatever a server says, the account's key
comes out masked: in messages, field names, reason phrases, model ids, escaped JSON.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from reconciler.api import wire
from reconciler.api.client import ClientSettings
from reconciler.api.responses import BodyReader, Where
from reconciler.api.secret import ApiKey
from reconciler.errors import (
    AnswerOverLimit,
    ApiUnreachable,
    MalformedResponse,
    ServerError,
    ValidationFailed,
)

from .api_support import MockAccount, endpoint_of

pytestmark = pytest.mark.anyio

NESTED = b"[" * 100_000
LISTING = {"status": "success", "models": [{"model_id": "e1"}]}


def with_(settings: ClientSettings, **changes: float) -> ClientSettings:
    return ClientSettings(**{**settings.__dict__, **changes})


class Chunks(httpx.AsyncByteStream):
    """A streamed body, as from the network: ``chunks`` with ``pause`` seconds before each."""

    def __init__(self, chunks: list[bytes], pause: float = 0.0, forever: bool = False) -> None:
        self.chunks, self.pause, self.forever = chunks, pause, forever

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            for chunk in self.chunks:
                await anyio.sleep(self.pause)
                yield chunk
            if not self.forever:
                return


def streamed(status: int, chunks: list[bytes], **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, stream=Chunks(chunks))


class Counting:
    def __init__(self, respond: object) -> None:
        self.respond = respond
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        response = self.respond(request)  # type: ignore[operator]
        assert isinstance(response, httpx.Response)
        return response


def bomb(inflated: int) -> bytes:
    """A gzip body of ``inflated`` zero bytes (about a thousandth of that compressed)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(inflated >> 20)]
    return b"".join([*parts, packer.flush()])


# -- size, depth, encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 500])
async def test_deeply_nested_json_is_a_malformed_answer(
    mock_account: MockAccount, status: int
) -> None:
    handler = Counting(lambda r: streamed(status, [NESTED]))
    async with mock_account(handler, api="enterprise") as account:
        with pytest.raises(AnswerOverLimit, match="nested deeper") as caught:
            await account.read_live()
    assert isinstance(caught.value, MalformedResponse)
    assert handler.calls == 1  # the same server gives the same answer: not retried
    assert "\n" not in str(caught.value)


async def test_a_body_over_the_size_limit_is_an_error_not_retried(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    handler = Counting(lambda r: streamed(200, [b" " * 4096] * 8))
    settings = with_(fast, max_body_bytes=10_000)
    async with mock_account(handler, api="enterprise", settings=settings) as account:
        with pytest.raises(AnswerOverLimit, match="larger than the limit of 10000 bytes"):
            await account.read_live()
    assert handler.calls == 1


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    handler = Counting(lambda r: streamed(200, [b"{}"], **{"content-length": "99999999999"}))
    settings = with_(fast, max_body_bytes=10_000)
    async with mock_account(handler, api="enterprise", settings=settings) as account:
        with pytest.raises(AnswerOverLimit, match="declares 99999999999 bytes"):
            await account.read_live()


async def test_a_gzip_bomb_stops_at_the_limit_after_decompression(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    body = bomb(64 << 20)
    assert len(body) < 100_000
    handler = Counting(lambda r: streamed(200, [body], **{"content-encoding": "gzip"}))
    settings = with_(fast, max_body_bytes=1 << 20)
    async with mock_account(handler, api="enterprise", settings=settings) as account:
        with pytest.raises(AnswerOverLimit, match=f"limit of {1 << 20} bytes"):
            await account.read_live()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_listing_within_the_limit_is_read(
    mock_account: MockAccount, encoding: str
) -> None:
    raw = json.dumps(LISTING).encode()
    packed = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    halves = [packed[: len(packed) // 2], packed[len(packed) // 2 :]]
    handler = Counting(lambda r: streamed(200, halves, **{"content-encoding": encoding}))
    async with mock_account(handler, api="enterprise") as account:
        live = await account.read_live()
    assert set(live.models) == {"e1"}


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("br", b"\x1b\x00"), ("gzip, gzip", b""), ("gzip", b"not gzip at all"), ("deflate", b"??")],
)
async def test_an_unreadable_encoding_is_a_malformed_answer(
    mock_account: MockAccount, encoding: str, body: bytes
) -> None:
    handler = Counting(lambda r: streamed(200, [body], **{"content-encoding": encoding}))
    async with mock_account(handler, api="enterprise") as account:
        with pytest.raises(MalformedResponse, match="cannot be read"):
            await account.read_live()


async def test_the_client_asks_only_for_encodings_it_decodes_with_a_bound(
    mock_account: MockAccount,
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["accept-encoding"])
        return httpx.Response(200, json=LISTING)

    async with mock_account(handler, api="enterprise") as account:
        await account.read_live()
    assert seen == ["gzip, deflate"]


def test_the_body_reader_never_holds_much_more_than_the_limit() -> None:
    """Decompression runs in bounded steps: no step inflates a whole chunk at once."""
    limit = 1 << 20
    reader = BodyReader(
        httpx.Headers({"content-encoding": "gzip"}),
        Where("acct", "endpoint", ApiKey("k")),
        limit,
    )
    with pytest.raises(AnswerOverLimit):
        reader.feed(bomb(256 << 20))
    assert len(reader.body) <= limit + (1 << 20)


# -- time --------------------------------------------------------------------------------------


async def test_a_trickling_body_is_cut_by_the_total_request_timeout(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    """One byte every 50 ms, forever: no gap between bytes is long, the total is."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Chunks([b" "], pause=0.05, forever=True))

    settings = with_(fast, request_timeout=0.5, retry_attempts=2)
    async with mock_account(handler, api="enterprise", settings=settings) as account:
        with anyio.fail_after(30), pytest.raises(ApiUnreachable, match="no answer within"):
            await account.read_live()


async def test_a_call_gives_up_on_an_unreachable_api_and_says_why(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    handler = Counting(lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)))
    settings = with_(
        fast,
        unreachable_deadline=1.0,
        retry_attempts=50,
        retry_wait_initial=0.1,
        retry_wait_max=5.0,
        deadline=300,
    )
    async with mock_account(handler, api="enterprise", settings=settings) as account:
        with pytest.raises(ApiUnreachable, match=r"could not reach the API.*gave up after"):
            await account.read_live()
    assert 1 <= handler.calls < 50


async def test_the_deadline_is_not_given_up_early_for_rate_limits(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    """The unreachable bound is for transport errors; a rate limit waits within the deadline."""
    answers = iter(
        [httpx.Response(429, json={"status": "error", "message": "Rate limit exceeded"})] * 5
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json=LISTING))

    settings = with_(
        fast, unreachable_deadline=0.1, retry_attempts=10, retry_wait_initial=0.1, retry_wait_max=5
    )
    async with mock_account(handler, api="enterprise", settings=settings) as account:
        live = await account.read_live()
    assert set(live.models) == {"e1"}


# -- keys in the API's words ------------------------------------------------------------------


def _shouting(canary: str) -> dict[str, object]:
    return {"status": "error", "message": f"Invalid key {canary.upper()} given"}


async def test_a_key_echoed_in_another_case_or_truncated_is_masked(
    mock_account: MockAccount, canary: str
) -> None:
    body = {"status": "error", "message": f"bad {canary.upper()} or {canary[:-3]}"}
    async with mock_account(lambda r: httpx.Response(500, json=body), api="enterprise") as account:
        with pytest.raises(ServerError) as caught:
            await account.read_live()
    text = str(caught.value)
    assert canary.lower() not in text.lower()
    assert canary[:-3].lower() not in text.lower()
    assert "****" in text


async def test_a_key_as_a_field_name_of_a_validation_map_is_masked(
    mock_account: MockAccount, canary: str
) -> None:
    body = {"status": "error", "message": {canary: [f"{canary} is not allowed"]}}
    async with mock_account(lambda r: httpx.Response(400, json=body), api="enterprise") as account:
        with pytest.raises(ValidationFailed) as caught:
            await account.read_live()
    assert canary not in str(caught.value)
    assert all(canary not in name for name in caught.value.fields)


async def test_a_key_in_the_reason_phrase_is_masked(mock_account: MockAccount, canary: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        reason = f"Bad {canary}\r\nX".encode()
        return httpx.Response(502, content=b"<html>", extensions={"reason_phrase": reason})

    async with mock_account(handler, api="enterprise") as account:
        with pytest.raises(ServerError) as caught:
            await account.read_live()
    assert canary not in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_a_key_listed_as_a_model_id_never_reaches_the_live_state(
    mock_account: MockAccount, canary: str
) -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in canary)  # JSON escapes spell it out

    def handler(request: httpx.Request) -> httpx.Response:
        if endpoint_of(request) == wire.FINETUNE_LIST:
            text = f'{{"status": "success", "data": ["{escaped}", "m1"]}}'
            return httpx.Response(200, content=text.encode())
        return httpx.Response(200, json=[{"model_id": canary.lower(), "status": "model_ready"}])

    async with mock_account(handler) as account:
        live = await account.read_live()
    assert "m1" in live.models
    assert all(canary.lower() not in model_id.lower() for model_id in live.models)
    assert canary.lower() not in repr(live).lower()


def test_mask_handles_every_form_and_leaves_other_text(canary: str) -> None:
    key = ApiKey(canary)
    assert key.mask(canary.swapcase()) == "****"
    assert key.mask(f"#{canary[2:16]}#") == "#****#"
    assert key.mask("model-1 is ready") == "model-1 is ready"
    assert key.mask(canary[:5]) == canary[:5]  # a short run is not a key


async def test_a_refusal_by_the_spam_filter_does_not_hold_the_clients_own_turn(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    """The server counts only accepted requests: the retry waits ``retry_after``, not a
    whole window of the client's own (which here would end past the call's deadline)."""
    answers = iter([httpx.Response(429, json={"status": "error", "retry_after": 0.01})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json=LISTING))

    settings = with_(fast, spam_window=30.0)
    async with mock_account(handler, api="enterprise", settings=settings) as account:
        live = await account.read_live(deadline=anyio.current_time() + 5)
    assert set(live.models) == {"e1"}


async def test_a_malformed_answer_is_one_line_whatever_its_field_names(
    mock_account: MockAccount, canary: str
) -> None:
    body = {"status": "success", "models": {f"x\n::error::{canary}": 1}}
    async with mock_account(lambda r: httpx.Response(200, json=body), api="enterprise") as account:
        with pytest.raises(MalformedResponse, match="documented shape") as caught:
            await account.read_live()
    assert "\n" not in str(caught.value)
    assert canary not in str(caught.value)
