"""``reconciler export`` against the emulator over HTTP (issue 12): a live account written as a
manifest that validates and plans to no changes when the ledger knows every model; placeholders
that ``validate`` rejects field by field when it does not; ``--adopt`` recording the filled-in
declaration as managed; and a file never overwritten without ``--force``, nor through a link.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from reconciler.manifest.models import PLACEHOLDER_MARKER

from ..e2e.e2e_support import ACCOUNTS, World, actions, changes, community_model, enterprise_model
from ..e2e.test_e2e_ledger import branch_files, commit_manifests, fresh_clone, origin

__all__ = ["origin"]  # the git fixture, shared with the ledger's tests

#: Models with fields away from the documented defaults, so that writing them back is tested.
DECLARED = {
    "studio": [
        community_model("alpha", revision="fp32", model_name="Alpha Realistic"),
        community_model("beta", model_visibility="private", model_format="safetensors"),
    ],
    "farm": [
        enterprise_model("alpha", from_safetensors="yes", revision="fp16"),
        enterprise_model("beta", upcast_attention="yes"),
    ],
}


def export_to(world: World, account: str, target: Path, *extra: str) -> tuple[int, str]:
    result = world.cli(
        "export",
        str(world.manifests),
        "--account",
        account,
        "--ledger",
        str(world.ledger),
        "-o",
        str(target),
        *extra,
    )
    return result.code, result.text


def ledger_entries(world: World, account: str) -> dict[str, dict[str, object]]:
    document = json.loads((world.ledger / f"{account}.json").read_text(encoding="utf-8"))
    models: dict[str, dict[str, object]] = document["models"]
    return models


@pytest.mark.parametrize("account", ["studio", "farm"])
def test_an_applied_account_exports_to_a_manifest_that_plans_no_changes(
    world: World, account: str
) -> None:
    world.manifest(account, DECLARED[account])
    assert world.apply().code == 0
    applied = {
        c["model_id"]: c["spec_hash"]
        for c in changes(world.plan("-o", "json").json(), account).values()
    }

    # The declared manifest goes away: the export must stand on its own.
    original = world.manifests / f"{account}.yaml"
    original.unlink()
    api, _, key_env = ACCOUNTS[account]
    exported = world.root / "exported" / f"{account}.yaml"
    result = world.cli(
        "export",
        "--account",
        account,
        "--api",
        api.value,
        "--key-env",
        key_env,
        "--ledger",
        str(world.ledger),
        "-o",
        str(exported),
        str(world.manifests),
    )
    assert result.code == 0, result.text
    assert "2 with fields from the ledger, 0 with fields to fill in" in result.err
    text = exported.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/manifest.schema.json\n")
    assert PLACEHOLDER_MARKER not in text
    document = yaml.safe_load(text)
    assert (document["version"], document["account"], document["api"]) == (1, account, api)
    assert document["key_env"] == key_env
    assert [m["model_id"] for m in document["models"]] == ["alpha", "beta"]

    exported.rename(original)
    assert world.cli("validate", str(world.manifests)).code == 0
    plan = world.plan("-o", "json").json()
    assert set(actions(plan, account).values()) == {"noop"}
    assert {m: c["spec_hash"] for m, c in changes(plan, account).items()} == applied
    assert all(c["managed"] for c in changes(plan, account).values())
    assert world.plan("--detailed-exitcode").code == 0


def test_a_declared_account_exports_to_stdout_with_its_settings(world: World) -> None:
    world.manifest("studio", DECLARED["studio"], prune="managed", ignore=["scratch-*"])
    assert world.apply().code == 0
    world.seed("studio", "scratch-1")
    world.seed("studio", "old-one", status="evicted")

    result = world.cli(
        "export", str(world.manifests), "--account", "studio", "--ledger", str(world.ledger)
    )
    assert result.code == 0, result.text
    document = yaml.safe_load(result.out)
    assert (document["prune"], document["ignore"]) == ("managed", ["scratch-*"])
    assert [m["model_id"] for m in document["models"]] == ["alpha", "beta"]
    assert document["models"][0] == {
        "model_id": "alpha",
        "url": "org/alpha",
        "model_format": "diffusers",
        "model_category": "stable_diffusion",
        "model_name": "Alpha Realistic",
        "revision": "fp32",
    }
    assert "#   - model_id: old-one\n" in result.out  # evicted: a comment, not an entry
    assert "scratch-1" not in result.out  # ignored: never reported
    assert "1 evicted, listed in a comment" in result.err


def test_models_the_ledger_does_not_know_get_placeholders_validate_rejects(
    world: World,
) -> None:
    world.seed("studio", "by-hand")
    world.seed("studio", "by-script")
    target = world.manifests / "studio.yaml"
    code, text = export_to(
        world, "studio", target, "--api", "community", "--key-env", "MODELSLAB_E2E_KEY_STUDIO"
    )
    assert code == 0, text
    assert "0 with fields from the ledger, 2 with fields to fill in" in text
    assert "export --account studio --adopt" in text

    result = world.cli("validate", str(world.manifests))
    assert result.code == 1
    problems = [
        line for line in result.err.splitlines() if PLACEHOLDER_MARKER in line or "fill in" in line
    ]
    assert len(problems) == 6  # url, model_format, model_category of each model
    lines = target.read_text(encoding="utf-8").splitlines()
    for model_index, field in [(0, "url"), (0, "model_format"), (1, "model_category")]:
        expected = (
            f"manifests/studio.yaml:{{line}}:{{column}}: models[{model_index}].{field}: "
            f"fill in '{field}': this is a placeholder written by `reconciler export`"
        )
        match = next(p for p in problems if f"models[{model_index}].{field}:" in p)
        number, column = re.search(r"studio\.yaml:(\d+):(\d+):", match).groups()  # type: ignore[union-attr]
        assert expected.format(line=number, column=column) in match
        assert lines[int(number) - 1].lstrip(" -").startswith(f"{field}: ")
    assert "is not one of" not in result.err  # the enum check does not drown the placeholder


def test_filled_in_export_adopt_then_plan_shows_the_models_managed(world: World) -> None:
    world.seed("farm", "by-hand")
    target = world.manifests / "farm.yaml"
    code, text = export_to(
        world, "farm", target, "--api", "enterprise", "--key-env", "MODELSLAB_E2E_KEY_FARM"
    )
    assert code == 0, text
    exported = target.read_text(encoding="utf-8")
    filled = re.sub(r"url: '?FILL-IN.*", "url: org/by-hand", exported)
    filled = re.sub(r"model_type: '?FILL-IN.*", "model_type: huggingface", filled)
    target.write_text(filled, encoding="utf-8")
    assert world.cli("validate", str(world.manifests)).code == 0

    before = changes(world.plan("-o", "json").json(), "farm")
    assert not before["by-hand"]["managed"]

    result = world.cli(
        "export",
        str(world.manifests),
        "--account",
        "farm",
        "--adopt",
        "--ledger",
        str(world.ledger),
    )
    assert result.code == 0, result.text
    assert "adopted      by-hand" in result.out
    assert "farm: 1 model adopted" in result.out

    after = changes(world.plan("-o", "json").json(), "farm")
    assert after["by-hand"]["managed"] and after["by-hand"]["action"] == "noop"
    entry = ledger_entries(world, "farm")["by-hand"]
    assert (entry["outcome"], entry["spec_hash"]) == ("adopted", after["by-hand"]["spec_hash"])
    assert world.mutations() == {}  # adopting sends nothing

    # Once adopted, an export has every field from the ledger: no placeholder any more.
    result = world.cli(
        "export", str(world.manifests), "--account", "farm", "--ledger", str(world.ledger)
    )
    assert result.code == 0 and PLACEHOLDER_MARKER not in result.out
    assert yaml.safe_load(result.out) == yaml.safe_load(filled)

    again = world.cli(
        "export",
        str(world.manifests),
        "--account",
        "farm",
        "--adopt",
        "--ledger",
        str(world.ledger),
    )
    assert "managed      by-hand: already in the ledger; kept" in again.out


def test_adopt_refuses_a_manifest_with_placeholders(world: World) -> None:
    world.seed("studio", "by-hand")
    target = world.manifests / "studio.yaml"
    export_to(
        world, "studio", target, "--api", "community", "--key-env", "MODELSLAB_E2E_KEY_STUDIO"
    )
    result = world.cli(
        "export",
        str(world.manifests),
        "--account",
        "studio",
        "--adopt",
        "--ledger",
        str(world.ledger),
    )
    assert result.code == 1
    assert "models[0].url: fill in 'url'" in result.err
    assert not (world.ledger / "studio.json").exists()


def test_export_never_overwrites_without_force_nor_through_a_link(world: World) -> None:
    world.seed("studio", "by-hand")
    world.manifest("studio", [])
    target = world.root / "out" / "studio.yaml"
    target.parent.mkdir()
    target.write_text("mine\n", encoding="utf-8")

    code, text = export_to(world, "studio", target)
    assert code == 1
    assert "already exists; nothing was written (--force overwrites)" in text
    assert target.read_text(encoding="utf-8") == "mine\n"

    elsewhere = world.root / "elsewhere.yaml"
    elsewhere.write_text("kept\n", encoding="utf-8")
    link = world.root / "out" / "link.yaml"
    link.symlink_to(elsewhere)
    code, text = export_to(world, "studio", link, "--force")
    assert code == 1 and "symbolic link" in text
    assert elsewhere.read_text(encoding="utf-8") == "kept\n"

    code, text = export_to(world, "studio", target, "--force")
    assert code == 0, text
    assert "model_id: by-hand" in target.read_text(encoding="utf-8")


def test_an_undeclared_account_needs_its_api(world: World) -> None:
    world.manifest("studio", [])
    result = world.cli("export", str(world.manifests), "--account", "farm")
    assert result.code == 1
    assert "account 'farm' is not declared under" in result.err
    assert "--api community|enterprise" in result.err
    # The key variable must still match the operator's pattern.
    result = world.cli(
        "export",
        str(world.manifests),
        "--account",
        "farm",
        "--api",
        "enterprise",
        "--key-env",
        "GITHUB_TOKEN",
    )
    assert result.code == 1 and "--key-env: key_env names a variable outside" in result.err


def test_a_second_export_is_not_stopped_by_the_first_ones_placeholders(world: World) -> None:
    world.seed("studio", "by-hand")
    world.seed("farm", "on-farm")
    first = world.manifests / "studio.yaml"
    code, text = export_to(
        world, "studio", first, "--api", "community", "--key-env", "MODELSLAB_E2E_KEY_STUDIO"
    )
    assert code == 0, text
    second = world.manifests / "farm.yaml"
    code, text = export_to(
        world, "farm", second, "--api", "enterprise", "--key-env", "MODELSLAB_E2E_KEY_FARM"
    )
    assert code == 0, text
    assert "were not read (3 problems; `reconciler validate` lists them): using --api" in text
    assert "model_id: on-farm" in second.read_text(encoding="utf-8")
    # Without --api the declaration is needed, and an invalid one is reported, not guessed.
    result = world.cli("export", str(world.manifests), "--account", "farm")
    assert result.code == 1 and "models[0].url: fill in 'url'" in result.err


def test_export_without_the_key_names_the_variable_and_sends_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.manifest("studio", [])
    monkeypatch.delenv("MODELSLAB_E2E_KEY_STUDIO")
    result = world.cli("export", str(world.manifests), "--account", "studio")
    assert result.code == 1
    assert "environment variable MODELSLAB_E2E_KEY_STUDIO is not set" in result.err
    assert result.out == ""
    assert world.count("v3/finetune_list") == 0


def test_flags_that_contradict_the_declaration_are_refused(world: World) -> None:
    world.manifest("studio", [])
    result = world.cli("export", str(world.manifests), "--account", "studio", "--api", "enterprise")
    assert result.code == 1
    assert "account 'studio' is declared there with other settings" in result.err


def test_adopt_publishes_to_the_git_branch_ledger(world: World, origin: Path) -> None:
    world.seed("studio", "by-hand", url="org/by-hand")
    world.manifest("studio", [community_model("by-hand")])
    clone = fresh_clone(world, origin, "ci-1")
    commit_manifests(world, clone, "declare by-hand")
    result = world.cli(
        "export", str(clone / "manifests"), "--account", "studio", "--adopt", "--ledger", "git:"
    )
    assert result.code == 0, result.text
    entry = branch_files(origin)["studio.json"]["models"]["by-hand"]  # type: ignore[index]
    assert entry["outcome"] == "adopted"
    # A later run, from a fresh clone, sees the model managed and exports it in full.
    second = fresh_clone(world, origin, "ci-2")
    planned = world.cli("plan", str(second / "manifests"), "--ledger", "git:", "-o", "json")
    assert changes(planned.json(), "studio")["by-hand"]["managed"]
    exported = world.cli(
        "export", str(second / "manifests"), "--account", "studio", "--ledger", "git:"
    )
    assert exported.code == 0 and PLACEHOLDER_MARKER not in exported.out
