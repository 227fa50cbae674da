"""The layering of style.md holds: import-linter's contracts (``[tool.importlinter]`` in
pyproject.toml) are kept.

The contracts are the one statement of the layers: an exhaustive ``layers`` contract places
every module of the package, and ``forbidden`` contracts keep the core, the manifests, the
renderers and the emulator away from I/O and from each other. Running them here makes a plain
``pytest`` catch an upward import, not only ``.ci/run``.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def contract_names() -> list[str]:
    """The name of every contract pyproject.toml declares."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return [str(contract["name"]) for contract in contracts]


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"

    done = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
    assert f"{len(contract_names())} kept" in done.stdout


def test_the_package_layers_contract_places_every_module() -> None:
    """The layers contract is exhaustive over the package: a new module must be given a layer."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    layers = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    by_container = {tuple(c["containers"]): c for c in layers}

    assert by_container[("reconciler",)]["exhaustive"] is True
    assert by_container[("reconciler.api",)]["exhaustive"] is True
