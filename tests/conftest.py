"""Fixtures shared by every test: manifest trees on disk and the anyio backend."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from reconciler.api import secret

ManifestTree = Callable[[Mapping[str, str]], Path]


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``root`` and return ``root``."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def manifest_tree(tmp_path: Path) -> ManifestTree:
    """``manifest_tree({"prod.yaml": "..."})`` writes the files and returns their folder."""
    return lambda files: write_tree(tmp_path, files)


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only (we do not use pytest-asyncio)."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _outside_github_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the output a person sees, even when the suite itself runs in GitHub Actions
    (there ``GITHUB_ACTIONS=true`` would switch every command to ``-o github``)."""
    for name in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_EVENT_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_terminal_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's terminal: with ``pytest -s`` stdin would be one, and an
    in-process ``apply`` would wait for an answer. Tests of the question use a pseudo-terminal."""
    monkeypatch.setattr(sys, "stdin", io.StringIO())


@pytest.fixture(autouse=True)
def _crash_logs_stay_in_a_temporary_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A test that provokes a bug writes its crash log under pytest's temporary folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _keys_of_this_test_only() -> Iterator[None]:
    """Each test masks only its own keys.

    Every API key alive in the process is masked in error lines and logs (see
    ``reconciler.api.secret.redact``): right for a run, which holds only its accounts' keys. The
    suite runs many tests per process, and a short test key (``"k"``) kept alive by a cycle
    the collector has not reached yet would mask every ``k`` of a later test's output.
    """
    yield
    secret._LIVE_KEYS.clear()
