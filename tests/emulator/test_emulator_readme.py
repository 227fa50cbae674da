"""The README's emulator section names every assumed behaviour of the emulator (issue 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.emulator.assumptions import ASSUMPTIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def _emulator_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Emulator")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


@pytest.mark.parametrize("name", sorted(ASSUMPTIONS))
def test_readme_lists_the_assumption(name: str) -> None:
    assert f"**{name}**" in _emulator_section()


def test_readme_lists_no_assumption_the_emulator_lacks() -> None:
    listed = {
        line.split("**")[1] for line in _emulator_section().splitlines() if line.startswith("- **")
    }
    assert listed == set(ASSUMPTIONS)
