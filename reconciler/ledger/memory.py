"""A ledger held in memory: for library callers and tests that keep the state themselves.

It behaves as a ledger session (:class:`~reconciler.ledger.store.LedgerSession`) without a
disk: every record is kept in :attr:`MemorySession.records`, in order, so a caller can see
exactly what a run wrote and when (intents before requests, answers as they came).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from reconciler.core.ledger_entries import LEDGER_FORMAT_VERSION, LedgerEntry, LedgerState


class MemorySession:
    """A ledger session over an in-memory copy of ``state``."""

    def __init__(self, state: LedgerState | None = None) -> None:
        start = state or LedgerState()
        self.state = start
        self._accounts = {name: dict(models) for name, models in start.accounts.items()}
        self.records: list[tuple[str, str, LedgerEntry | None]] = []
        self.claimed: list[str] = []
        self.checkpoints: list[str] = []
        self.notices: list[str] = []

    def current_state(self, accounts: Collection[str] | None = None) -> LedgerState:
        """The current entries of ``accounts`` (all accounts when None)."""
        names = self._accounts if accounts is None else accounts
        kept = {name: dict(self._accounts[name]) for name in names if self._accounts.get(name)}
        return LedgerState.model_construct(format_version=LEDGER_FORMAT_VERSION, accounts=kept)

    async def record(self, account: str, model_id: str, entry: LedgerEntry | None) -> None:
        """Keep one record, in order."""
        self.records.append((account, model_id, entry))
        models = self._accounts.setdefault(account, {})
        if entry is None:
            models.pop(model_id, None)
        else:
            models[model_id] = entry

    async def record_many(self, account: str, entries: Mapping[str, LedgerEntry | None]) -> None:
        """Keep several records, in order."""
        for model_id, entry in entries.items():
            await self.record(account, model_id, entry)

    async def claim(self, accounts: Collection[str]) -> None:
        """Note the claim; nothing else can hold a memory ledger."""
        self.claimed.extend(sorted(accounts))

    async def checkpoint(self, accounts: Collection[str]) -> None:
        """Note the checkpoint."""
        self.checkpoints.extend(sorted(accounts))
