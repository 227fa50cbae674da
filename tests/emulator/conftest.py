"""Fixtures for the emulator's tests: an in-process app, an httpx client on it, both modes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette

from reconciler.emulator import EmulatorState, create_app

from .emulator_support import in_process, make_config


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["legacy", "modern"])
def error_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def app(error_mode: str) -> Starlette:
    return create_app(make_config(error_mode=error_mode))


@pytest.fixture
def state(app: Starlette) -> EmulatorState:
    emulator: EmulatorState = app.state.emulator
    return emulator


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(app) as http:
        yield http


@pytest.fixture
def expect_code(error_mode: str) -> Callable[[int], int]:
    """The HTTP status an answer of modern status ``code`` travels with in this mode."""
    return lambda code: code if error_mode == "modern" else 200
