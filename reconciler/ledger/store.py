"""Where the ledger lives, chosen once per command: a local folder or a git branch.

The ledger is what this tool last applied per account and model (see
:mod:`reconciler.core.ledger_entries` for its shape). This package only reads, records and locks it;
which entry follows from what happened is :mod:`reconciler.core.ledger_fold`'s decision. A
ledger that cannot be read is an error that says how to recover; it is never silently reset,
because an empty ledger quietly turns replace and ``prune: managed`` off.

Two stores share one layout (one JSON file per account):

- a local folder (:class:`~reconciler.ledger.folder.FolderLedger`), by default
  ``.reconciler-ledger/`` beside the first manifest folder, never inside it, so that
  ``git add manifests/`` never picks it up;
- a git branch (:class:`~reconciler.ledger.git.GitBranchLedger`, ``--ledger git:BRANCH``), for
  CI, where a local folder would not survive the run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from reconciler.core.ledger_entries import LedgerEntry, LedgerState
from reconciler.ledger.folder import FolderLedger, first_error
from reconciler.ledger.git import DEFAULT_BRANCH, GitBranchLedger, find_repository
from reconciler.manifest.loader import DEFAULT_MANIFEST_PATHS

LEDGER_FOLDER_NAME = ".reconciler-ledger"
#: The single-file ledger of earlier releases, beside the manifests; converted on first use.
LEGACY_FILE_NAME = ".reconciler-ledger.json"
GIT_PREFIX = "git:"

__all__ = [
    "GIT_PREFIX",
    "LEDGER_FOLDER_NAME",
    "LEGACY_FILE_NAME",
    "LedgerSession",
    "LedgerStore",
    "default_ledger_path",
    "first_error",
    "open_ledger",
]


class LedgerSession(Protocol):
    """One run's hold on the ledger: what it was, and durable records as the run goes."""

    notices: list[str]

    @property
    def state(self) -> LedgerState:
        """The ledger as the run found it (the plan is made from it)."""
        ...

    def current_state(self, accounts: Collection[str]) -> LedgerState:
        """The current entries of ``accounts``, for re-planning them after the run."""
        ...

    async def record(self, account: str, model_id: str, entry: LedgerEntry | None) -> None:
        """Set or remove one entry; on disk when this returns (write-ahead)."""
        ...

    async def record_many(self, account: str, entries: Mapping[str, LedgerEntry | None]) -> None:
        """Set or remove several entries of one account; on disk when this returns."""
        ...

    async def claim(self, accounts: Collection[str]) -> None:
        """Hold ``accounts`` against other runs before anything is sent for them."""
        ...

    async def checkpoint(self, accounts: Collection[str]) -> None:
        """``accounts``' part of the run ended: persist (and publish) what was recorded."""
        ...


class LedgerStore(Protocol):
    """A place where the ledger is kept."""

    @property
    def description(self) -> str:
        """Where, for messages."""
        ...

    def read(self) -> LedgerState:
        """The ledger, for commands that only read it (plan, status)."""
        ...

    def session(self) -> AbstractContextManager[LedgerSession]:
        """Hold the ledger for one run; LedgerLocked if another run holds it."""
        ...


def _first_folder(manifest_paths: Sequence[str]) -> Path:
    first = Path((manifest_paths or DEFAULT_MANIFEST_PATHS)[0])
    return first if first.is_dir() else first.parent


def default_ledger_path(manifest_paths: Sequence[str]) -> Path:
    """``.reconciler-ledger/`` beside the first manifest folder (in its parent), never in it.

    The first path is that folder when it is a directory, else the folder of the file. With
    no paths, the CLI's default manifest folder is used.
    """
    return _first_folder(manifest_paths).resolve().parent / LEDGER_FOLDER_NAME


def open_ledger(
    where: str | None, manifest_paths: Sequence[str], claim_seconds: float = 3600.0
) -> LedgerStore:
    """The store ``--ledger`` names: ``git:[BRANCH]``, a folder, or (None) the default folder.

    The default folder takes over a single-file ledger of an earlier release found at its
    old place beside the manifests.
    """
    if where is not None and where.startswith(GIT_PREFIX):
        branch = where[len(GIT_PREFIX) :] or DEFAULT_BRANCH
        repo = find_repository(_first_folder(manifest_paths))
        return GitBranchLedger(repo, branch, claim_seconds)
    if where is not None:
        return FolderLedger(Path(where))
    legacy = _first_folder(manifest_paths) / LEGACY_FILE_NAME
    return FolderLedger(default_ledger_path(manifest_paths), legacy=legacy)
