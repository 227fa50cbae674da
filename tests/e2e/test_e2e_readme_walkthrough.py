"""The README's "Starting from zero" walk-through, run command by command (issue 12).

Every ``reconciler`` line of the section's shell blocks runs as written, in an empty folder,
against an emulator account of the same name; the test adds only the global options that point
at the emulator (``--api-base``, a short spam window) and, for ``apply``, a short poll interval.
``export`` lines set the variable to the emulator's key. The YAML block of the section is the
edit the reader makes to the starter manifest.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.emulator.config import AccountConfig, EmulatorConfig
from reconciler.emulator.server import running_emulator

from .e2e_support import APPLY_TIMEOUT, POLL_INTERVAL, TIME_SCALE, Result, World

README = Path(__file__).resolve().parents[2] / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[list[str]]:
    return [words for line in block.splitlines() if (words := shlex.split(line, comments=True))]


@pytest.fixture
def fresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """An emulator with the walk-through's account, and an empty repository as the cwd."""
    key = f"sk-{secrets.token_hex(12)}"
    for name in ("RECONCILER_API_BASE", "RECONCILER_LEDGER", "MODELSLAB_KEY_STUDIO_PROD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    config = EmulatorConfig(
        accounts=[AccountConfig(name="studio-prod", key=key, api="community")],
        time_scale=TIME_SCALE,
        seed=7,
    )
    with running_emulator(config) as emulator:
        world = World(emulator, tmp_path, capsys, {"studio-prod": key})
        yield world
    world.assert_no_key_in_outputs()


def run_block(world: World, block: str, monkeypatch: pytest.MonkeyPatch) -> list[Result]:
    results = []
    for words in commands(block):
        if words[0] == "export":
            name = words[1].split("=", 1)[0]
            monkeypatch.setenv(name, world.keys["studio-prod"])
            continue
        assert words[0] == "reconciler", words
        extra = ["--poll-interval", str(POLL_INTERVAL), "--timeout", str(APPLY_TIMEOUT)]
        result = world.cli(*words[1:], *(extra if words[1] == "apply" else []))
        assert result.code == 0, (words, result.text)
        results.append(result)
    return results


def test_starting_from_zero_runs_as_written(fresh: World, monkeypatch: pytest.MonkeyPatch) -> None:
    text = section("Starting from zero")
    first, second = blocks(text, "bash")
    (models,) = blocks(text, "yaml")

    init, validate, plan = run_block(fresh, first, monkeypatch)
    assert "manifests/studio-prod.yaml: written" in init.out
    assert validate.out == "1 account valid: studio-prod\n"
    assert "No changes." in plan.out

    manifest = fresh.root / "manifests" / "studio-prod.yaml"
    starter = manifest.read_text(encoding="utf-8")
    edited = re.sub(r"^models: \[\].*$", models.rstrip("\n"), starter, count=1, flags=re.M)
    assert edited != starter
    manifest.write_text(edited, encoding="utf-8")

    plan, apply = run_block(fresh, second, monkeypatch)
    assert "+ load" in plan.out and "analog-diffusion" in plan.out
    assert "Apply complete: 1 account converged." in apply.out
    assert fresh.statuses("studio-prod") == {"analog-diffusion": "model_ready"}
    assert "Only 'yes'" in text  # the question the walk-through describes


def test_the_pre_commit_snippet_names_the_offered_hook() -> None:
    (snippet,) = blocks(section("Editor and pre-commit set-up"), "yaml")
    assert "id: reconciler-validate" in snippet
    hooks = (README.parent / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    assert "- id: reconciler-validate\n" in hooks


def test_adopting_an_existing_account_runs_as_written(
    fresh: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "Adopting an existing account" walk-through, on an account with a model loaded by
    hand: export → validate rejects the placeholders (the README's line, as printed) → the
    README's values filled in → validate → adopt → plan: no changes, the model managed."""
    text = section("Adopting an existing account")
    first, second = blocks(text, "bash")
    (example,) = blocks(text, "text")
    (filled,) = blocks(text, "yaml")
    fresh.seed("studio-prod", "analog-diffusion", url="wavymulder/Analog-Diffusion")

    *exported, validate = commands(first)
    (result,) = run_block(fresh, "\n".join(shlex.join(w) for w in exported), monkeypatch)
    assert "1 with fields to fill in" in result.err
    failed = fresh.cli(*validate[1:])
    assert failed.code == 1
    assert failed.err.splitlines()[0] == example.strip()

    manifest = fresh.root / "manifests" / "studio-prod.yaml"
    values = yaml.safe_load(filled)[0]
    written = manifest.read_text(encoding="utf-8")
    for field, value in values.items():
        written = re.sub(rf"^(\s*{field}: )FILL-IN.*$", rf"\g<1>{value}", written, flags=re.M)
    assert "FILL-IN" not in written.split("\nversion: 1\n", 1)[1]
    manifest.write_text(written, encoding="utf-8")

    validated, adopt, plan = run_block(fresh, second, monkeypatch)
    assert validated.out == "1 account valid: studio-prod\n"
    assert "adopted      analog-diffusion" in adopt.out
    assert "No changes." in plan.out
    assert fresh.mutations() == {}  # adopting an account sends nothing
    plan_json = fresh.cli("plan", "-o", "json").json()
    (change,) = plan_json["accounts"][0]["changes"]
    assert (change["model_id"], change["action"], change["managed"]) == (
        "analog-diffusion",
        "noop",
        True,
    )
