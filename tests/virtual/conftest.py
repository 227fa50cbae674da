"""Fixtures of the virtual-time end-to-end tests: a fresh in-process emulator per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..e2e.e2e_support import accounts_with_keys
from .virtual_support import VirtualWorld, virtual_world


@pytest.fixture
def world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[VirtualWorld]:
    """The :data:`ACCOUNTS` on an in-process emulator, their keys in the environment, the
    client and the emulator on one fake clock."""
    keys, config = accounts_with_keys(monkeypatch)
    with virtual_world(config, tmp_path, capsys, keys, monkeypatch) as world:
        yield world
