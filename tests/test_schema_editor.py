"""The manifest schema is ready for editors (issue 12): a stable ``$id`` and ``title``, a
``description`` on every field for hover help, and a standard JSON Schema validator (what the
YAML language server runs) accepts the example and starter manifests and flags mistakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from reconciler.scaffold import starter_manifest
from reconciler.schema import SCHEMA_ID, manifest_schema

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "schemas" / "manifest.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)


def properties(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property schema in ``node``, with a path for messages."""
    if isinstance(node, dict):
        for name, child in (node.get("properties") or {}).items():
            yield f"{path}/{name}", child
        for key, child in node.items():
            yield from properties(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from properties(child, f"{path}/{index}")


def test_the_schema_has_a_stable_id_and_a_title() -> None:
    assert SCHEMA["$id"] == SCHEMA_ID
    assert SCHEMA_ID == "https://github.com/reconciler/reconciler/schemas/manifest.schema.json"
    assert SCHEMA["title"] == "reconciler manifest (format version 1)"
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)


def test_every_field_and_definition_has_a_description() -> None:
    found = list(properties(manifest_schema()))
    assert len(found) > 40
    missing = [path for path, schema in found if not schema.get("description", "").strip()]
    assert missing == []
    undocumented = [name for name, d in SCHEMA["$defs"].items() if not d.get("description")]
    assert undocumented == []


def documents(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", sorted((REPO / "manifests").glob("*.yaml")), ids=lambda p: p.name)
def test_the_example_manifests_validate_against_the_schema(path: Path) -> None:
    for document in documents(path):
        assert list(VALIDATOR.iter_errors(document)) == []


@pytest.mark.parametrize("api", ["community", "enterprise"])
def test_a_starter_manifest_validates_against_the_schema(api: str) -> None:
    document = yaml.safe_load(starter_manifest("studio", api, "x"))  # type: ignore[arg-type]
    assert list(VALIDATOR.iter_errors(document)) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"api": "other"}, "api"),
        ({"models": [{"model_id": "m", "url": "u", "model_format": "zip"}]}, "model_format"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"version": 2}, "version"),
    ],
)
def test_an_editor_flags_mistakes(change: dict[str, Any], field: str) -> None:
    document = {"version": 1, "account": "a", "api": "community", "key_env": "MODELSLAB_A"}
    errors = list(VALIDATOR.iter_errors(document | change))
    assert errors, change
    assert any(field in json.dumps(list(e.absolute_path)) + e.message for e in _leaves(errors))


def _leaves(errors: list[Any]) -> Iterator[Any]:
    for error in errors:
        yield error
        yield from _leaves(list(error.context or ()))
