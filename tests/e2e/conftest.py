"""Fixtures of the end-to-end tests: a fresh emulator per test (see :mod:`e2e_support`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator.server import running_emulator

from .e2e_support import World, accounts_with_keys


@pytest.fixture
def world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """A fresh emulator with the :data:`ACCOUNTS`, their keys in the environment."""
    keys, config = accounts_with_keys(monkeypatch)
    with running_emulator(config) as emulator:
        world = World(emulator, tmp_path, capsys, keys)
        yield world
    world.assert_no_key_in_outputs()
