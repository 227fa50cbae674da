"""Starter files that ``reconciler init`` writes: the three GitHub workflows.

The workflows are package data (``reconciler/templates/workflows/*.yml``), copies of this
repository's own ``.github/workflows`` without the emulator, with keys from Actions secrets and
``uses:`` naming the action at a ref the caller gives (pin it to a commit SHA).
:func:`write_workflows` only writes the files it is asked to, never through a symlink, and
never over an existing file unless ``force``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from reconciler.errors import ConfigError
from reconciler.fsutil import SymlinkRefused, atomic_write_text

WORKFLOW_NAMES = ("plan.yml", "apply.yml", "reconcile.yml")
ACTION_PLACEHOLDER = "__RECONCILER_ACTION__"
#: What ``uses:`` says until the user pins the action: an obvious placeholder, not a guess.
DEFAULT_ACTION = "OWNER/reconciler@COMMIT_SHA"


#: The key variable the templates name; ``init`` puts the account's own in its place.
TEMPLATE_KEY_ENV = "MODELSLAB_KEY_STUDIO_PROD"


def workflow_text(name: str, action: str = DEFAULT_ACTION, key_env: str | None = None) -> str:
    """The text of one template workflow with ``uses:`` set to ``action``.

    ``key_env`` replaces the templates' example key variable (and its secret's name).
    """
    if name not in WORKFLOW_NAMES:
        raise ConfigError(f"no workflow template {name}; there are {', '.join(WORKFLOW_NAMES)}")
    text = resources.files(__package__).joinpath("workflows", name).read_text(encoding="utf-8")
    if key_env is not None:
        text = text.replace(TEMPLATE_KEY_ENV, key_env)
    return text.replace(ACTION_PLACEHOLDER, action)


def write_workflows(
    root: Path, action: str = DEFAULT_ACTION, *, force: bool = False, key_env: str | None = None
) -> list[Path]:
    """Write the three workflows into ``root/.github/workflows``; return the paths written.

    Raises:
        ConfigError: a target exists (without ``force``) or is a symlink; nothing is written.
    """
    folder = root / ".github" / "workflows"
    targets = [folder / name for name in WORKFLOW_NAMES]
    for target in targets:
        if target.is_symlink():
            raise ConfigError(f"{target} is a symlink; refusing to write through it")
        if target.exists() and not force:
            raise ConfigError(f"{target} exists; remove it or pass --force to overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    for target in targets:
        try:
            # overwrite=force: a file that appeared since the check is not overwritten either.
            atomic_write_text(
                target, workflow_text(target.name, action, key_env), 0o644, overwrite=force
            )
        except SymlinkRefused as exc:
            raise ConfigError(f"{target} is a symlink; refusing to write through it") from exc
        except FileExistsError as exc:
            raise ConfigError(f"{target} exists; remove it or pass --force to overwrite") from exc
    return targets
