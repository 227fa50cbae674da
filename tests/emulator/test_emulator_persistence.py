"""The emulator's state file: it holds account keys, so only its owner may read it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import create_app
from reconciler.emulator.persistence import read_state, write_state

from .emulator_support import COMMUNITY_KEY, control, in_process, make_config

ACCOUNTS = [{"name": "studio", "key": COMMUNITY_KEY, "api": "community", "models": []}]


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (022), under which a plain write makes the file world-readable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_state_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state.json"

    write_state(path, 12.5, ACCOUNTS)

    assert mode(path) == 0o600
    assert read_state(path) == (12.5, ACCOUNTS)


def test_a_readable_state_file_becomes_private_when_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o644)
    leftover = tmp_path / ".state.json.tmp"  # a temporary left by a crash keeps its mode
    leftover.write_text("partial", encoding="utf-8")
    leftover.chmod(0o644)

    write_state(path, 1.0, ACCOUNTS)

    assert mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.anyio
async def test_the_emulator_writes_its_state_file_privately(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    app = create_app(make_config(state_file=path))
    async with in_process(app) as client:
        await client.post(
            control(client, "accounts"), json={"name": "late", "key": "l", "api": "community"}
        )

    assert "late" in path.read_text(encoding="utf-8")
    assert mode(path) == 0o600
