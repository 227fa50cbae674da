"""Issue 14, output that cannot be hijacked: hostile text from the server and from manifests
reaches no terminal or CI log raw, in any output mode of plan, apply, status and validate.

The hostile model ids are on the accounts when the emulator starts, from a state file (as a
restarted emulator would have them), so they come back through the API's own listings. Every
output of every command is then checked: no raw control character (C0 but the newline, DEL,
C1), no bidi override, no line that the GitHub runner would read as a workflow command.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator.config import EmulatorConfig

from ..e2e.e2e_support import TIME_SCALE, World, community_model, enterprise_model
from .virtual_support import virtual_world

HOSTILE_IDS = (
    "a\n::error title=x::injected",
    "::warning file=x::at the start",
    "\x1b[2J\x1b]0;pwned\x07clear",
    "x##[error]legacy command",
    "rtl\u202egpj.exe",
    "c1\x9b31m\x85del\x7f",
)
#: A character a terminal or the runner would act on: C0 but newline, DEL, C1, bidi controls.
RAW_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
KEYS = {"studio": "MODELSLAB_E2E_KEY_STUDIO", "farm": "MODELSLAB_E2E_KEY_FARM"}


def assert_harmless(text: str) -> None:
    """No raw control character and no workflow command (modern or legacy) in ``text``."""
    found = RAW_CONTROL.search(text)
    assert found is None, f"raw {found.group()!r} in output:\n{text}"
    for line in text.splitlines():
        assert not line.lstrip().startswith("::"), line
        assert "##[" not in line, line


def state_file(path: Path, keys: dict[str, str], now: float) -> Path:
    """An emulator state file whose accounts already own the hostile models."""
    models = [
        {"model_id": model_id, "spec": {"url": "org/x"}, "status": "model_ready", "created_at": now}
        for model_id in HOSTILE_IDS
    ]
    accounts = [
        {"name": "studio", "key": keys["studio"], "api": "community", "queue_limit": 5},
        {"name": "farm", "key": keys["farm"], "api": "enterprise", "queue_limit": 5},
    ]
    document = {
        "format_version": 1,
        "now": now,
        "accounts": [account | {"models": models} for account in accounts],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def hostile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """A world whose two accounts own the :data:`HOSTILE_IDS` (community and enterprise)."""
    keys = {name: f"sk-{name}-{secrets.token_hex(12)}" for name in KEYS}
    for name, key_env in KEYS.items():
        monkeypatch.setenv(key_env, keys[name])
    for name in ("RECONCILER_API_BASE", "RECONCILER_LEDGER", "RECONCILER_SPAM_WINDOW"):
        monkeypatch.delenv(name, raising=False)
    start = 1_780_000_000.0
    config = EmulatorConfig(
        state_file=state_file(tmp_path / "state.json", keys, start),
        start_time=start,
        time_scale=TIME_SCALE,
        seed=7,
    )
    with virtual_world(config, tmp_path, capsys, keys, monkeypatch) as world:
        yield world
    for text in world.outputs:
        assert_harmless(text)


def hostile_manifests(world: World) -> None:
    """``studio`` keeps the hostile ids unmanaged; ``farm`` prunes them (deletes them all).

    Manifest values are hostile too: a model name with escapes and an injected command line.
    """
    name = "name \x1b[31mred\x1b[0m\n::error title=m::from a manifest ##[warning]w"
    world.manifest("studio", [community_model("legit", model_name=name)])
    world.manifest("farm", [enterprise_model("keeper")], prune="all")


def test_hostile_ids_from_the_server_are_shown_but_never_obeyed(hostile: World) -> None:
    hostile_manifests(hostile)
    for output in ("text", "json", "markdown"):
        result = hostile.plan("-o", output, "--max-deletes", "10")
        assert result.code == 0, result.text
    text = hostile.plan("--max-deletes", "10").out
    assert "a\\n::error title=x::injected" in text  # shown, escaped, on the account's line
    assert "\\x1b[2J\\x1b]0;pwned\\x07clear" in text
    assert "rtl\\u202egpj.exe" in text
    assert "x##\\x5berror]legacy command" in text
    document = hostile.plan("-o", "json", "--max-deletes", "10").json()
    farm = next(a for a in document["accounts"] if a["account"] == "farm")
    assert {c["model_id"] for c in farm["changes"]} >= set(HOSTILE_IDS)  # JSON keeps the data

    applied = hostile.apply("--max-deletes", "10")
    assert applied.code == 0, applied.text
    assert "farm: - deleted ::warning file=x::at the start\n" in applied.err  # progress
    assert set(hostile.statuses("farm")) == {"keeper"}

    for output in ("text", "json"):
        assert hostile.status("-o", output).code == 0


def test_apply_json_and_item_messages_stay_harmless(hostile: World) -> None:
    hostile_manifests(hostile)
    result = hostile.apply("-o", "json", "--max-deletes", "10")
    assert result.code == 0, result.text
    report = result.json()
    deleted = {
        item["model_id"]
        for account in report["accounts"]
        for item in account["items"]
        if item["action"] == "delete"
    }
    assert deleted == set(HOSTILE_IDS)


def test_a_refused_run_names_hostile_ids_safely(hostile: World) -> None:
    hostile_manifests(hostile)  # six deletes on farm: over the default --max-deletes of 5
    plan = hostile.plan()
    assert plan.code == 1
    assert "Error: apply will refuse to run" in plan.out
    applied = hostile.apply()
    assert applied.code == 1
    assert hostile.mutations() == {}


def test_hostile_manifest_values_in_validation_errors(
    hostile: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = hostile.root / "bad"
    folder.mkdir()
    bad = folder / "::error title=f::file.yaml"
    bad.write_text(
        "version: 1\naccount: studio\napi: community\nkey_env: MODELSLAB_E2E_KEY_STUDIO\n"
        'models:\n  - model_id: ok\n    url: org/ok\n    model_format: "\\e[2J\\n::error::x"\n'
        '    model_category: "\\u202e##[error]y"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(folder)  # the file is named relative to here: first thing on the line
    for output in ("text", "json"):
        result = hostile.cli("validate", ".", "-o", output)
        assert result.code == 1, result.text
    result = hostile.cli("plan", ".")
    assert result.code == 1
    assert result.err.startswith("error: \\x3a:error title=f::file.yaml:"), result.err


def test_the_error_boundary_echoes_one_harmless_line(hostile: World) -> None:
    hostile.manifest("studio", [community_model("legit")])
    result = hostile.cli("plan", str(hostile.manifests), "--account", "a\n::error::x\x1b[2J")
    assert result.code == 1
    assert result.err == "error: unknown account a\\n::error::x\\x1b[2J; declared: studio\n"
