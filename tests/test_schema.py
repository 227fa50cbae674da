"""The committed JSON Schema of manifests is current, and the examples point at it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import jsonschema
import pytest
import yaml
from pydantic import Field, TypeAdapter

from reconciler import schema
from reconciler.cli import run
from reconciler.errors import ConfigError
from reconciler.manifest.models import CommunityAccount, EnterpriseAccount

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / schema.SCHEMA_FILE
EXAMPLES = sorted((REPO / "manifests").glob("*.yaml"))
HEADER = "# yaml-language-server: $schema="


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)
    return REPO


def test_committed_schema_equals_generated() -> None:
    assert schema.schema_is_current(SCHEMA), "stale: run `reconciler schema --write`"
    assert SCHEMA.read_text(encoding="utf-8") == schema.render_schema()


def test_schema_check_passes_on_the_committed_file(
    in_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["schema", "--check"]) == 0
    assert run(["schema"]) == 0  # --check is the default

    assert "up to date" in capsys.readouterr().out


class _EditedCommunityAccount(CommunityAccount):
    """A model field added without regenerating the schema."""

    colour: str | None = Field(default=None, description="A field nobody regenerated for.")


def test_a_model_edit_without_regenerating_fails_the_check(
    in_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    edited: TypeAdapter[Any] = TypeAdapter(
        Annotated[_EditedCommunityAccount | EnterpriseAccount, Field(discriminator="api")]
    )
    monkeypatch.setattr(schema, "ACCOUNT_ADAPTER", edited)

    assert not schema.schema_is_current(SCHEMA)
    assert run(["schema", "--check"]) == 1

    err = capsys.readouterr().err
    assert "stale" in err
    assert "reconciler schema --write" in err


def test_a_changed_rendering_fails_the_check(
    in_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(schema, "render_schema", lambda: "{}\n")

    assert run(["schema", "--check"]) == 1
    assert "reconciler schema --write" in capsys.readouterr().err


def test_write_creates_then_keeps_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["schema", "--check"]) == 1  # nothing written yet

    assert run(["schema", "--write"]) == 0
    assert run(["schema", "--write"]) == 0
    assert run(["schema", "--check"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("written")
    assert out[1].endswith("up to date")
    assert (tmp_path / schema.SCHEMA_FILE).read_text(encoding="utf-8") == schema.render_schema()


def test_check_without_a_schema_file_says_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    assert run(["schema", "--check"]) == 1

    err = capsys.readouterr().err
    assert f"there is no schema file at {schema.SCHEMA_FILE}" in err
    assert "run from the repository root" in err
    assert "reconciler schema --write" in err
    assert "stale" not in err


def test_write_where_schemas_is_a_file_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schemas").write_text("not a folder", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        schema.write_schema()
    assert f"cannot write the schema {schema.SCHEMA_FILE}: schemas exists and is not a folder" in (
        str(caught.value)
    )
    assert run(["schema", "--write"]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write the schema {schema.SCHEMA_FILE}")
    assert "internal error" not in err


def test_schema_is_strict_and_describes_every_field() -> None:
    document = json.loads(SCHEMA.read_text(encoding="utf-8"))
    definitions = document["$defs"]

    for name in ("CommunityAccount", "EnterpriseAccount", "CommunityModel", "EnterpriseModel"):
        definition = definitions[name]
        assert definition["additionalProperties"] is False, name
        undocumented = [
            f for f, spec in definition["properties"].items() if "description" not in spec
        ]
        assert not undocumented, f"{name}: {undocumented}"
    assert document["discriminator"]["propertyName"] == "api"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_manifest_names_the_schema(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]

    assert first_line.startswith(HEADER)
    target = (path.parent / first_line.removeprefix(HEADER).strip()).resolve()
    assert target == SCHEMA.resolve()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_manifest_is_valid_against_the_schema(path: Path) -> None:
    document_schema = json.loads(SCHEMA.read_text(encoding="utf-8"))

    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        jsonschema.validate(document, document_schema)


def test_examples_use_only_keys_the_schema_declares() -> None:
    """A check that needs no JSON Schema library: every key is a property of its definition."""
    definitions = json.loads(SCHEMA.read_text(encoding="utf-8"))["$defs"]
    for path in EXAMPLES:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            prefix = "Community" if document["api"] == "community" else "Enterprise"
            assert set(document) <= set(definitions[f"{prefix}Account"]["properties"])
            assert set(document.get("defaults", {})) <= set(
                definitions[f"{prefix}Defaults"]["properties"]
            )
            for entry in document.get("models", []):
                kind = "AbsentModel" if entry.get("ensure") == "absent" else f"{prefix}Model"
                assert set(entry) <= set(definitions[kind]["properties"]), (path.name, entry)
