"""Generate, write and check the committed JSON Schema of manifests (``schemas/``).

The schema is a build artefact of :mod:`reconciler.manifest.models`: ``schema --write``
regenerates it and ``schema --check`` (and a test) fail when the committed file is stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError
from reconciler.fsutil import atomic_write_text
from reconciler.manifest.models import ACCOUNT_ADAPTER, FORMAT_VERSION

SCHEMA_FILE = Path("schemas") / "manifest.schema.json"
#: The schema's ``$id``: stable across versions, so editors and caches keep one identity for it.
SCHEMA_ID = "https://github.com/reconciler/reconciler/schemas/manifest.schema.json"
#: The schema is committed and read by editors: world-readable, as git checks it out.
SCHEMA_FILE_MODE = 0o644


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document, as generated from the pydantic models."""
    schema = ACCOUNT_ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"reconciler manifest (format version {FORMAT_VERSION})",
        "description": "One YAML document declares the models of one ModelsLab account.",
        **schema,
    }


def render_schema() -> str:
    """The schema as the exact text committed to the repository."""
    return json.dumps(manifest_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_FILE) -> bool:
    """Write the schema (atomically, never through a symlink); return whether it changed.

    Raises:
        ConfigError: the file or its folder cannot be written.
    """
    text = render_schema()
    try:
        if schema_is_current(path):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text, SCHEMA_FILE_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot write the schema {path}: {_os_reason(exc, path)}") from exc
    return True


def schema_is_current(path: Path = SCHEMA_FILE) -> bool:
    """Whether the committed schema equals the one the models generate now.

    Raises:
        ConfigError: the file exists but cannot be read.
    """
    try:
        if path.is_symlink():  # never current: write_schema then refuses it with a reason
            return False
        return path.is_file() and path.read_bytes() == render_schema().encode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the schema {path}: {_os_reason(exc, path)}") from exc


def _os_reason(exc: OSError, path: Path) -> str:
    """Why ``exc`` happened, naming the file it concerns when that is not ``path`` itself."""
    if exc.filename is None or Path(exc.filename) == path:
        return exc.strerror or str(exc)
    if isinstance(exc, FileExistsError):  # from mkdir: a file is where the folder should be
        return f"{exc.filename} exists and is not a folder"
    return f"{exc.filename}: {exc.strerror or exc}"
