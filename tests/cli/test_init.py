"""``reconciler init`` (issue 12): a starter manifest that validates as written, explains its
fields, names its key variable after the account, and never overwrites without ``--force``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.cli import run
from reconciler.manifest.loader import load_manifests
from reconciler.scaffold import key_env_for, starter_manifest
from reconciler.schema import render_schema

APIS = ("community", "enterprise")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in an empty folder, as a new repository would be."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def reconciler(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def uncommented(text: str) -> str:
    """The starter with its example entries in use, as its comment tells a user to do."""
    head, tail = text.split("models: []", 1)
    return head + "models:" + re.sub(r"^#( +(?:-|\w+:))", r"\1", tail, flags=re.MULTILINE)


@pytest.mark.parametrize("api", APIS)
def test_init_writes_a_manifest_that_validates(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = reconciler(capsys, "init", "--account", "studio-prod", "--api", api)
    assert code == 0
    assert "manifests/studio-prod.yaml: written" in out
    assert "schemas/manifest.schema.json: written" in out
    assert "MODELSLAB_KEY_STUDIO_PROD" in out

    code, out, _ = reconciler(capsys, "validate", "manifests")
    assert (code, out) == (0, "1 account valid: studio-prod\n")
    text = Path("manifests/studio-prod.yaml").read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/manifest.schema.json\n")
    assert Path("schemas/manifest.schema.json").read_text(encoding="utf-8") == render_schema()
    (account,) = load_manifests(["manifests"])
    assert (account.api, account.spec.key_env, account.spec.models) == (
        api,
        "MODELSLAB_KEY_STUDIO_PROD",
        (),
    )


@pytest.mark.parametrize("api", APIS)
def test_every_field_line_is_explained(api: str) -> None:
    text = starter_manifest("a", api, "s.json")  # type: ignore[arg-type]
    fields = [
        line
        for line in text.splitlines()
        if re.match(r"^#? *-? *\w+:", line) and "$schema" not in line
    ]
    assert len(fields) > 10
    assert [line for line in fields if " # " not in line] == []


@pytest.mark.parametrize("api", APIS)
def test_the_commented_example_validates_once_uncommented(api: str, in_tmp: Path) -> None:
    text = uncommented(starter_manifest("studio", api, "s.json"))  # type: ignore[arg-type]
    (in_tmp / "studio.yaml").write_text(text, encoding="utf-8")
    (account,) = load_manifests([in_tmp / "studio.yaml"])
    assert [m.model_id for m in account.desired()] == ["my-model", "old-experiment"]
    assert [m.ensure for m in account.desired()] == ["present", "absent"]


@pytest.mark.parametrize(
    ("account", "key_env"),
    [
        ("studio-prod", "MODELSLAB_KEY_STUDIO_PROD"),
        ("a.b_c", "MODELSLAB_KEY_A_B_C"),
        ("x", "MODELSLAB_KEY_X"),
    ],
)
def test_key_env_is_named_after_the_account(account: str, key_env: str) -> None:
    assert key_env_for(account) == key_env


def test_init_into_a_named_folder_points_at_the_schema_beside_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = reconciler(
        capsys, "init", "infra/models", "--account", "farm", "--api", "enterprise"
    )
    assert code == 0
    text = Path("infra/models/farm.yaml").read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/manifest.schema.json\n")
    assert Path("infra/schemas/manifest.schema.json").is_file()
    assert reconciler(capsys, "validate", "infra/models")[0] == 0


def test_init_never_overwrites_without_force(capsys: pytest.CaptureFixture[str]) -> None:
    Path("manifests").mkdir()
    Path("manifests/studio.yaml").write_text("# mine\n", encoding="utf-8")
    code, out, err = reconciler(capsys, "init", "--account", "studio", "--api", "community")
    assert code == 1
    assert err == (
        "error: manifests/studio.yaml already exists; nothing was written (--force overwrites)\n"
    )
    assert Path("manifests/studio.yaml").read_text(encoding="utf-8") == "# mine\n"
    assert not Path("schemas").exists()  # a refused run writes nothing at all

    code, out, _ = reconciler(
        capsys, "init", "--account", "studio", "--api", "community", "--force"
    )
    assert code == 0
    assert "manifests/studio.yaml: overwritten" in out
    assert reconciler(capsys, "validate")[0] == 0


def test_init_again_is_a_no_op_and_another_schema_is_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert reconciler(capsys, "init", "--account", "studio", "--api", "community")[0] == 0
    Path("schemas/manifest.schema.json").write_text("{}\n", encoding="utf-8")  # an older one
    code, out, _ = reconciler(capsys, "init", "--account", "studio", "--api", "community")
    assert code == 0
    assert "manifests/studio.yaml: unchanged" in out
    assert "schemas/manifest.schema.json: kept" in out
    assert Path("schemas/manifest.schema.json").read_text(encoding="utf-8") == "{}\n"
    code, out, _ = reconciler(capsys, "init", "--account", "farm", "--api", "enterprise")
    assert code == 0  # a second account is not blocked by the older schema
    assert reconciler(capsys, "validate")[0] == 0


def test_init_replaces_a_symlink_and_never_writes_through_it(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    outside = in_tmp / "outside.txt"
    outside.write_text("precious\n", encoding="utf-8")
    Path("manifests").mkdir()
    Path("manifests/studio.yaml").symlink_to(outside)
    assert reconciler(capsys, "init", "--account", "studio", "--api", "community")[0] == 1
    Path("manifests/dangling.yaml").symlink_to(in_tmp / "nowhere.yaml")
    assert reconciler(capsys, "init", "--account", "dangling", "--api", "community")[0] == 1
    assert not (in_tmp / "nowhere.yaml").exists()

    assert (
        reconciler(capsys, "init", "--account", "studio", "--api", "community", "--force")[0] == 0
    )
    assert outside.read_text(encoding="utf-8") == "precious\n"
    assert not Path("manifests/studio.yaml").is_symlink()


@pytest.mark.parametrize("name", ["bad name", "-dash", "x" * 65, "a/b"])
def test_a_bad_account_name_is_refused_before_writing(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = reconciler(capsys, "init", "--account", name, "--api", "community")
    assert code == 1
    assert err.startswith(f"error: --account {name!r} is not a valid account name")
    assert not Path("manifests").exists()


def test_init_requires_account_and_api(capsys: pytest.CaptureFixture[str]) -> None:
    assert reconciler(capsys, "init", "--api", "community")[0] == 1
    assert reconciler(capsys, "init", "--account", "a")[0] == 1
    assert reconciler(capsys, "init", "--account", "a", "--api", "other")[0] == 1


def test_init_github_writes_the_three_workflows_for_the_account(
    capsys: pytest.CaptureFixture[str], in_tmp: Path
) -> None:
    action = "octo/reconciler@" + "a" * 40
    code, out, err = reconciler(
        capsys, "init", "--account", "studio-prod", "--api", "community", "--github",
        "--action", action,
    )  # fmt: skip
    assert code == 0, err
    folder = in_tmp / ".github" / "workflows"
    assert sorted(p.name for p in folder.iterdir()) == ["apply.yml", "plan.yml", "reconcile.yml"]
    key_env = key_env_for("studio-prod")
    for path in folder.iterdir():
        text = path.read_text(encoding="utf-8")
        assert f"uses: {action}" in text
        assert "MODELSLAB_KEY_STUDIO_PROD" not in text or key_env == "MODELSLAB_KEY_STUDIO_PROD"
        assert f"secrets.{key_env}" in text
    assert f"repository secret {key_env}" in out
    assert reconciler(capsys, "validate", "manifests")[0] == 0
    # a second run refuses to overwrite them
    again = reconciler(capsys, "init", "--account", "other", "--api", "community", "--github")
    assert again[0] == 1 and "--force" in again[2]
