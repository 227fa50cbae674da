"""The layering of style.md holds: the pure core and the manifests never reach I/O layers.

Two independent checks: import-linter's contracts (``[tool.importlinter]`` in pyproject.toml),
and a plain AST walk that needs no tool at all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "reconciler"

NEVER_IN_CORE_OR_MANIFEST = ("httpx", "click", "reconciler.emulator", "reconciler.api.client")
NEVER_IN_CORE = (*NEVER_IN_CORE_OR_MANIFEST, "yaml")


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


def imported_modules(source: str, package: str) -> set[str]:
    """Every module ``source`` imports, relative imports resolved against ``package``.

    Imports inside functions count too: a lazy import is still an import.
    """
    parts = package.split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def forbidden_imports(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    """``file: module`` for every import under ``folder`` of a forbidden module or its parts."""
    problems = []
    for path in sorted(folder.rglob("*.py")):
        package = ".".join(path.parent.relative_to(REPO).parts)
        for module in sorted(imported_modules(path.read_text(encoding="utf-8"), package)):
            if any(module == bad or module.startswith(f"{bad}.") for bad in forbidden):
                problems.append(f"{path.relative_to(REPO)}: {module}")
    return problems


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("manifest", NEVER_IN_CORE_OR_MANIFEST), ("core", NEVER_IN_CORE)],
)
def test_layer_never_imports_io(folder: str, forbidden: tuple[str, ...]) -> None:
    if not list((PACKAGE / folder).rglob("*.py")):
        pytest.skip(f"reconciler/{folder} has no modules yet")

    assert forbidden_imports(PACKAGE / folder, forbidden) == []


def test_the_walk_sees_every_spelling_of_an_import() -> None:
    source = (
        "import httpx\n"
        "import click.testing as ct\n"
        "from yaml import safe_load\n"
        "from reconciler import emulator\n"
        "from ..emulator import app\n"
        "from . import diff\n"
        "def lazy():\n"
        "    import reconciler.api.client\n"
    )

    modules = imported_modules(source, "reconciler.core")

    assert {
        "httpx",
        "click.testing",
        "yaml",
        "reconciler.emulator",
        "reconciler.emulator.app",
        "reconciler.core.diff",
        "reconciler.api.client",
    } <= modules
