"""``reconciler export --adopt``: record the declared, live models in the ledger as managed.

The decision is :func:`reconciler.export.adoptions`' (pure); this module holds the ledger for
the run, makes that decision on the entries found under the lock (so a run that recorded in
between is never overwritten), and records each adoption through the ledger session, as
``apply`` records its own (claimed first, then checkpointed: the git store publishes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import anyio

from reconciler.core.ledger_entries import stamp
from reconciler.core.live import LiveState
from reconciler.export import Adoption, adoptions
from reconciler.ledger.store import LedgerSession, LedgerStore
from reconciler.manifest.models import LoadedAccount


def adopt_account(
    store: LedgerStore, account: LoadedAccount, live: LiveState, now: datetime | None = None
) -> tuple[tuple[Adoption, ...], list[str]]:
    """Adopt ``account``'s declared models that ``live`` shows and the ledger does not know.

    Returns every declared model's :class:`Adoption` and the ledger's notices.

    Raises:
        LedgerLocked: another run holds the ledger (or the account, on the git store).
        LedgerError: the ledger cannot be read or written.
    """
    at = stamp(now or datetime.now(UTC))
    with store.session() as session:
        decided = adoptions(account, live, session.state.entries(account.name), at)
        anyio.run(_record, session, account.name, decided)
        return decided, list(session.notices)


async def _record(session: LedgerSession, account: str, decided: Sequence[Adoption]) -> None:
    to_record = [a for a in decided if a.entry is not None]
    if not to_record:
        return
    await session.claim([account])
    for adoption in to_record:
        await session.record(account, adoption.model_id, adoption.entry)
    await session.checkpoint([account])
