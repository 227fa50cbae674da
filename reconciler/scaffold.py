"""``reconciler init``: a starter manifest for one account, and the schema editors read.

A team that starts from zero gets, in one command, a manifest that validates as it is: the
``yaml-language-server`` header (so an editor completes and explains every field), a comment
on every field, ``key_env`` named after the account (``MODELSLAB_KEY_<ACCOUNT>``, which the
default key pattern accepts) and no model yet, with a commented example entry to copy. The
schema is written beside the manifests' folder (``manifests/`` → ``schemas/``, the layout
``reconciler schema --write`` keeps), where the header points.

Files are never overwritten without ``force``: every manifest target is checked before any
file is written, so a refused run writes nothing. A schema that exists with other content (an
older version's) is kept and reported, so a second ``init`` is never blocked by it.

A write goes through :func:`reconciler.fsutil.atomic_write_text`: a temporary file in the same
folder that is then linked (a new file) or renamed (``force``) into place: a crash never leaves
half a file, and a symlink at the target is replaced, never followed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from reconciler import schema as schema_files
from reconciler.api import wire
from reconciler.api.kinds import ApiKind
from reconciler.errors import ConfigError
from reconciler.fsutil import atomic_write_text
from reconciler.manifest.models import ACCOUNT_ADAPTER, Api

#: The folder ``init`` writes into when none is named: the one the other commands read.
DEFAULT_DIRECTORY = Path("manifests")
#: Comments start in this column, or two spaces after the longest line.
_COMMENT_COLUMN = 40


@dataclass(frozen=True)
class StarterFile:
    """One file ``init`` writes: where, its text, and whether another content there stops it."""

    path: Path
    text: str
    required: bool = True


def key_env_for(account: str) -> str:
    """``studio-prod`` → ``MODELSLAB_KEY_STUDIO_PROD``: the key variable named after the account."""
    return "MODELSLAB_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", account).upper()


def starter_files(directory: Path, account: str, api: Api) -> tuple[StarterFile, ...]:
    """The manifest ``DIRECTORY/ACCOUNT.yaml`` and the schema it points to, in
    ``DIRECTORY/../schemas/``.

    Raises:
        ConfigError: ``account`` is not a valid account name.
    """
    schema_path = directory.parent / schema_files.SCHEMA_FILE
    schema_ref = Path(os.path.relpath(schema_path, directory)).as_posix()
    text = starter_manifest(account, api, schema_ref)
    _check_valid(text, account)
    return (
        StarterFile(directory / f"{account}.yaml", text),
        StarterFile(schema_path, schema_files.render_schema(), required=False),
    )


def write_starter(files: Sequence[StarterFile], *, force: bool) -> list[tuple[Path, str]]:
    """Write ``files``; return each path with what happened to it: ``written``,
    ``overwritten``, ``unchanged``, or ``kept`` (an optional file with other content).

    Raises:
        ConfigError: a required file exists with other content and ``force`` is false
            (nothing is written then), or a file cannot be written.
    """
    existing = {f.path: _current(f.path) for f in files}
    differs = [f for f in files if existing[f.path] not in (None, f.text)]
    refused = [str(f.path) for f in differs if f.required]
    if refused and not force:
        raise ConfigError(
            f"{', '.join(refused)} already exists; nothing was written (--force overwrites)"
        )
    results: list[tuple[Path, str]] = []
    for file in files:
        if existing[file.path] == file.text:
            results.append((file.path, "unchanged"))
            continue
        if file in differs and not force:
            results.append((file.path, "kept"))
            continue
        _write(file.path, file.text, replace=existing[file.path] is not None)
        results.append((file.path, "written" if existing[file.path] is None else "overwritten"))
    return results


def starter_manifest(account: str, api: Api, schema_ref: str) -> str:
    """The text of a starter manifest for ``account`` (no I/O)."""
    head = [
        f"# yaml-language-server: $schema={schema_ref}",
        f'# The models that must be loaded on the ModelsLab account "{account}".',
        "# `reconciler validate` checks this file; `reconciler plan` shows what `apply` would do.",
        "# An editor with the YAML language server explains each field on hover.",
    ]
    fields = [
        ("version: 1", "manifest format version; 1 is the only one"),
        (f"account: {account}", "a name, unique across all manifests"),
        (f"api: {api}", "community (v3/v4) or enterprise (v1/enterprise)"),
        (f"key_env: {key_env_for(account)}", "variable holding the API key (never the key)"),
        ("queue_limit: 5", "loads run at once: 5, 10 or 15 by plan"),
        ("prune: none", "delete undeclared models: none, managed or all"),
        ("ignore: []", 'model id globs never touched, e.g. "scratch-*"'),
        ("# api_base: https://modelslab.com/api/", "optional: another API base URL"),
    ]
    body = _BODIES[ApiKind(api)]
    return "\n".join([*head, *_commented([*fields, *body])]) + "\n"


def _choices(literal: Any) -> str:
    values = get_args(literal)
    shown = ", ".join(values[:-1]) + f" or {values[-1]}"
    return shown if len(shown) <= 48 else ", ".join(values[:3]) + ", …"


#: To declare models, put entries in place of ``[]``: the example's lines without their ``#``.
_EXAMPLE_NOTE = ("", "to add models: replace [] by entries such as")
_COMMUNITY: list[tuple[str, str]] = [
    ("defaults:", "merged under every model entry"),
    ("  revision: fp16", f"weights precision: {_choices(wire.Revision)}"),
    ("  model_visibility: private", "private or public (API default: public)"),
    ("models: []", "the models that must be loaded"),
    _EXAMPLE_NOTE,
    ("# - model_id: my-model", "these (each line without its #)"),
    ("#   url: stabilityai/stable-diffusion-2-1", "Hugging Face repo id or a file link"),
    ("#   model_format: diffusers", _choices(wire.ModelFormat)),
    ("#   model_category: stable_diffusion", _choices(wire.ModelCategory)),
    ("#   model_name: My model", "display name (default: the model_id)"),
    ("#   protect: false", "true: never deleted or replaced"),
    ("# - model_id: old-experiment", "a model that must not exist;"),
    ("#   ensure: absent", "community: reported, not deletable by API"),
]
_ENTERPRISE: list[tuple[str, str]] = [
    ("defaults: {}", "merged under every entry, e.g. revision: fp16"),
    ("models: []", "the models that must be loaded"),
    _EXAMPLE_NOTE,
    ("# - model_id: my-model", "these (each line without its #)"),
    ("#   url: stabilityai/stable-diffusion-2-1", "Hugging Face repo id or a .ckpt link"),
    ("#   model_type: huggingface", _choices(wire.EnterpriseModelType)),
    ('#   from_safetensors: "no"', '"yes" when the url is a safetensors file'),
    ('#   upcast_attention: "no"', '"yes" only for Stable Diffusion 2.1'),
    ("#   protect: false", "true: never deleted or replaced"),
    ("# - model_id: old-experiment", "a model that must not exist:"),
    ("#   ensure: absent", "apply deletes it"),
]

#: The part of the starter manifest that depends on the account's API.
_BODIES: dict[ApiKind, list[tuple[str, str]]] = {
    ApiKind.COMMUNITY: _COMMUNITY,
    ApiKind.ENTERPRISE: _ENTERPRISE,
}


def _commented(block: Sequence[tuple[str, str]]) -> list[str]:
    """``code  # comment`` lines, comments aligned in one column."""
    width = max(_COMMENT_COLUMN, *(len(code) + 2 for code, _ in block))
    lines = []
    for code, comment in block:
        prefix = code.ljust(width) if code else " " * width
        lines.append(f"{prefix}# {comment}" if comment else code)
    return lines


def _check_valid(text: str, account: str) -> None:
    """The starter validates as it is; a bad ``--account`` is the only way it would not."""
    try:
        ACCOUNT_ADAPTER.validate_python(yaml.safe_load(text))
    except ValidationError as exc:
        raise ConfigError(
            f"--account {account!r} is not a valid account name: use letters, digits, '.', "
            "'_' and '-' (at most 64), starting with a letter or a digit"
        ) from exc


def _current(path: Path) -> str | None:
    """The text at ``path``; None when nothing is there (not even a dangling symlink)."""
    if not os.path.lexists(path):
        return None
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return ""  # something is there that we cannot compare: treat as different


def _write(path: Path, text: str, *, replace: bool) -> None:
    # 0644: a manifest is no secret. A symlink at path is replaced, never followed; a new file
    # is linked into place, which fails if anything appeared there meanwhile.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text, 0o644, overwrite=replace, replace_symlink=True)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
