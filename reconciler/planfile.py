"""Saved plans: ``plan --out plan.json`` writes one, ``apply plan.json`` reads it back.

The one module of the plan file: which argument of ``apply`` names it, writing it, and reading
it back into a :class:`~reconciler.core.plan.Plan`. The file is exactly the ``plan -o json``
document (see :mod:`reconciler.render.plan_json` for the format). Reading refuses a file of
another ``format_version``, one whose content no longer matches its digest (edited by hand),
and anything unreadable, each as a :class:`ConfigError` naming the file. Whether the live
state has moved since the plan was made is ``apply``'s check, not this module's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.core.plan import PLAN_FORMAT_VERSION, Plan
from reconciler.errors import ConfigError
from reconciler.fsutil import atomic_write_text
from reconciler.ledger.store import first_error
from reconciler.manifest.loader import DEFAULT_MANIFEST_PATHS
from reconciler.render.plan_json import DERIVED_KEYS, plan_json_text

#: A plan names accounts and models: readable by its owner only.
PLAN_FILE_MODE = 0o600


def split_plan_file(paths: Sequence[str]) -> tuple[Path | None, tuple[str, ...]]:
    """``apply plan.json [PATHS]``: the saved plan, if any, and the manifest paths."""
    plans = [p for p in paths if p.endswith(".json")]
    if len(plans) > 1:
        raise ConfigError(f"apply takes one saved plan, got {', '.join(plans)}")
    rest = tuple(p for p in paths if not p.endswith(".json"))
    return (Path(plans[0]) if plans else None), (rest or DEFAULT_MANIFEST_PATHS)


def write_plan_file(plan: Plan, path: Path) -> None:
    """Write ``plan`` to ``path`` as its JSON document: atomically, mode 0600, and never
    through a symlink (one committed where the plan goes must not redirect the write).

    Raises:
        ConfigError: the file cannot be written, or ``path`` is a symlink.
    """
    try:
        atomic_write_text(path, plan_json_text(plan), PLAN_FILE_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot write plan file {path}: {exc.strerror or exc}") from exc


def read_plan_file(path: Path) -> Plan:
    """The plan saved in ``path``, checked against its version and digest.

    Raises:
        ConfigError: unreadable, not a plan, another format version, or edited.
    """
    document = _load_document(path)
    _check_version(document, path)
    try:
        plan = plan_from_document(document)
    except ValidationError as exc:
        raise ConfigError(f"plan file {path} is not a valid plan: {first_error(exc)}") from exc
    if document.get("digest") != plan.digest():
        raise ConfigError(
            f"plan file {path} was edited after it was made (its digest does not match its "
            "content); make a new one with `reconciler plan --out`"
        )
    return plan


def plan_from_document(document: Mapping[str, Any]) -> Plan:
    """The plan a document describes; derived keys (digest, summary) are ignored.

    Raises:
        pydantic.ValidationError: the document does not describe a plan.
    """
    content = {key: value for key, value in document.items() if key not in DERIVED_KEYS}
    return Plan.model_validate(content)


def _load_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read plan file {path}: {reason}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"plan file {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"plan file {path} is not a plan: expected a JSON object")
    return document


def _check_version(document: dict[str, Any], path: Path) -> None:
    version = document.get("format_version")
    if version != PLAN_FORMAT_VERSION:
        raise ConfigError(
            f"plan file {path} has format_version {json.dumps(version)}; this reconciler reads "
            f"format_version {PLAN_FORMAT_VERSION}: make the plan again with this version"
        )
