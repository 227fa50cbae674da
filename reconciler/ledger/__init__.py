"""The ledger store: read, write and lock what this tool last applied (design.md §3).

The ledger's data and its pure updates are in :mod:`reconciler.core.records`; this package is
only about keeping it somewhere. It never decides what an entry means.
"""

from __future__ import annotations

from reconciler.ledger.store import (
    LEDGER_FILE_NAME,
    JsonFileLedger,
    LedgerStore,
    default_ledger_path,
)

__all__ = ["LEDGER_FILE_NAME", "JsonFileLedger", "LedgerStore", "default_ledger_path"]
