"""The ledger store: read, record and lock what this tool last applied (design.md §3).

The ledger's data is in :mod:`reconciler.core.ledger_entries` and its pure updates in
:mod:`reconciler.core.ledger_fold`; this package is only about keeping it somewhere (a local
folder, or a git branch for CI). It never decides what an entry means.
"""

from __future__ import annotations

from reconciler.ledger.folder import FolderLedger
from reconciler.ledger.git import GitBranchLedger
from reconciler.ledger.store import (
    LEDGER_FOLDER_NAME,
    LedgerSession,
    LedgerStore,
    default_ledger_path,
    open_ledger,
)

__all__ = [
    "LEDGER_FOLDER_NAME",
    "FolderLedger",
    "GitBranchLedger",
    "LedgerSession",
    "LedgerStore",
    "default_ledger_path",
    "open_ledger",
]
