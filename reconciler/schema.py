"""Generate, write and check the committed JSON Schema of manifests (``schemas/``).

The schema is a build artefact of :mod:`reconciler.manifest.models`: ``schema --write``
regenerates it and ``schema --check`` (and a test) fail when the committed file is stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.manifest.models import ACCOUNT_ADAPTER, FORMAT_VERSION

SCHEMA_FILE = Path("schemas") / "manifest.schema.json"


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document, as generated from the pydantic models."""
    schema = ACCOUNT_ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/reconciler/reconciler/schemas/manifest.schema.json",
        "title": f"reconciler manifest (format version {FORMAT_VERSION})",
        "description": "One YAML document declares the models of one ModelsLab account.",
        **schema,
    }


def render_schema() -> str:
    """The schema as the exact text committed to the repository."""
    return json.dumps(manifest_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_FILE) -> bool:
    """Write the schema; return whether the file changed."""
    text = render_schema()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def schema_is_current(path: Path = SCHEMA_FILE) -> bool:
    """Whether the committed schema equals the one the models generate now."""
    return path.is_file() and path.read_text(encoding="utf-8") == render_schema()
