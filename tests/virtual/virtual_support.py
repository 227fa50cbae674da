"""The end-to-end world on virtual time: the emulator in-process, one fake clock for both sides.

A :class:`VirtualWorld` is the :class:`~tests.e2e.e2e_support.World` of the end-to-end tests
(same accounts, same keys in the environment, same manifests, same ``reconciler`` commands
through :func:`reconciler.cli.run`, same control calls) with two differences. The emulator is
the ASGI app called over ``httpx.ASGITransport`` instead of a uvicorn server on a socket; and
the "real" time that the client sleeps in and the emulator scales (at the same 60×) is a
:class:`~reconciler.clock.FakeClock`. Polls, spam windows, backoffs, load times, deadlines,
load graces and hung answers then pass in virtual time: a test of a 30 s timeout takes
milliseconds and checks exactly what it checked in real time.

Commands build their :class:`~reconciler.engine.ApiAccess` themselves; the fixture makes every
``ApiAccess`` without a transport or clock of its own use the world's (see :func:`runs_in`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.clock import SYSTEM_CLOCK, FakeClock
from reconciler.emulator import create_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import EmulatorHandle
from reconciler.engine import ApiAccess

from ..e2e.e2e_support import World

#: Where the client sends requests: the ASGI transport answers, no socket is opened. Loopback,
#: as the client allows plain http:// only there; port 9 (discard), so a request that missed
#: the transport fails loudly instead of reaching something.
BASE_URL = "http://127.0.0.1:9/api/"
CONTROL_URL = "http://127.0.0.1:9/_emulator/"


@dataclass(kw_only=True)
class VirtualWorld(World):
    """A :class:`World` whose emulator is in-process and whose time is ``clock``."""

    clock: FakeClock
    transport: httpx.ASGITransport
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))

    def control(self, name: str, body: dict[str, Any] | None = None) -> Any:
        """GET (no body) or POST a control route; its JSON answer.

        Called from plain tests and from async ones alike, so the call runs on an event loop
        of its own in a worker thread (the emulator's state is thread-safe, as it is for the
        threaded server of the real-time tests).
        """
        return self._pool.submit(asyncio.run, self._control(name, body)).result()

    async def _control(self, name: str, body: dict[str, Any] | None) -> Any:
        async with httpx.AsyncClient(transport=self.transport, base_url=CONTROL_URL) as http:
            answer = await (http.get(name) if body is None else http.post(name, json=body))
        answer.raise_for_status()
        return answer.json()

    def close(self) -> None:
        """Stop the worker thread of the control calls."""
        self._pool.shutdown()


@contextmanager
def runs_in(
    monkeypatch: pytest.MonkeyPatch, transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> Iterator[None]:
    """Every ``ApiAccess`` made meanwhile that names no transport or clock gets these.

    The CLI builds its ``ApiAccess`` from its options, with neither; an engine-level test that
    passes its own (a transport that loses an answer) keeps it.
    """
    original = ApiAccess.__init__

    def with_world(self: ApiAccess, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.transport is None:
            object.__setattr__(self, "transport", transport)
        if self.clock is SYSTEM_CLOCK:
            object.__setattr__(self, "clock", clock)

    with monkeypatch.context() as patch:
        patch.setattr(ApiAccess, "__init__", with_world)
        yield


@contextmanager
def virtual_world(
    config: EmulatorConfig,
    root: Path,
    capsys: pytest.CaptureFixture[str],
    keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[VirtualWorld]:
    """A :class:`VirtualWorld` on an emulator made from ``config``; no key in any output.

    The fake clock's wall clock starts now, as the real-time world's does.
    """
    clock = FakeClock(utc_start=datetime.now(UTC))
    app = create_app(config, real_clock=clock.now, real_sleep=clock.sleep)
    transport = httpx.ASGITransport(app=app)
    handle = EmulatorHandle(BASE_URL, CONTROL_URL, app, "127.0.0.1", 9)
    world = VirtualWorld(
        emulator=handle, root=root, capsys=capsys, keys=keys, clock=clock, transport=transport
    )
    try:
        with runs_in(monkeypatch, transport, clock):
            yield world
    finally:
        world.close()
    world.assert_no_key_in_outputs()
