"""The models a run adopts are recorded in its lull, not at each account's end (issue 11).

A first run over accounts whose models are partly ready already (declared, not in the ledger:
adopted) and partly missing (loaded, two waves each) is applied on a fake clock against the
in-process emulator. At each account's end, a hundred accounts' adoption records came
together after the last listings, with their checkpoints and reports; now they are written
once every account has its first loads answered, while all of them wait for their loads.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import anyio
import httpx
import pytest
import yaml

from reconciler.api.kinds import ApiKind
from reconciler.apply import ApplyOptions, Lull
from reconciler.clock import FakeClock
from reconciler.core.ledger_entries import LedgerEntry
from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange
from reconciler.engine import ApiAccess, apply_accounts
from reconciler.errors import LedgerError
from reconciler.ledger.memory import MemorySession
from reconciler.manifest.loader import load_manifests

from .fleet_support import fleet_emulator

pytestmark = pytest.mark.anyio

QUEUE_LIMIT = 2
ACCOUNTS = {f"lull-{n}": ("community" if n % 2 else "enterprise") for n in range(4)}
READY, MISSING = 3, 2 * QUEUE_LIMIT  # per account: adopted, and loaded in two waves


def _spec(api: str, model_id: str) -> dict[str, str]:
    if api == "enterprise":
        return {"url": f"org/{model_id}", "model_type": "huggingface"}
    return {
        "url": f"org/{model_id}",
        "model_format": "diffusers",
        "model_category": "stable_diffusion",
    }


class SlowAdoptions(MemorySession):
    """A ledger whose adoption records take 500 s to reach the journal, and which notes what
    each account's checkpoint finds."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.checkpointed: dict[str, set[str]] = {}

    async def record_many(self, account: str, entries: Mapping[str, LedgerEntry | None]) -> None:
        if any(e is not None and e.outcome == "adopted" for e in entries.values()):
            await self.clock.sleep(500.0)  # the loads end meanwhile
        await super().record_many(account, entries)

    async def checkpoint(self, accounts: Collection[str]) -> None:
        for account in accounts:
            entries = self.current_state([account]).entries(account)
            self.checkpointed[account] = {m for m, e in entries.items() if e.outcome == "adopted"}


async def _first_run(root: Path, session: MemorySession | None = None) -> MemorySession:
    clock = FakeClock(start=1000.0)
    app, keys = fleet_emulator(ACCOUNTS, QUEUE_LIMIT, clock, seed=5)
    environ = {}
    for name, api in ACCOUNTS.items():
        ids = [f"{name}-m{n}" for n in range(READY + MISSING)]
        for model_id in ids[:READY]:
            app.state.emulator.seed_model(name, model_id, _spec(api, model_id))
        variable = f"MODELSLAB_{name.upper().replace('-', '_')}"
        environ[variable] = keys[name]
        document = {
            "version": 1,
            "account": name,
            "api": api,
            "key_env": variable,
            "queue_limit": QUEUE_LIMIT,
            "models": [{"model_id": m, **_spec(api, m)} for m in ids],
        }
        (root / f"{name}.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    access = ApiAccess(
        accounts=load_manifests([str(root)]),
        environ=environ,
        api_base="http://emulator/api/",
        transport=httpx.ASGITransport(app=app),
        clock=clock,
    )
    session = MemorySession() if session is None else session
    if isinstance(session, SlowAdoptions):
        session.clock = clock
    _, report = await apply_accounts(access, session, ApplyOptions(timeout=3600.0))
    assert all(account.converged for account in report.accounts), report
    return session


async def test_adoptions_are_recorded_before_any_load_is_seen_done(
    tmp_path: Path, anyio_backend: str
) -> None:
    session = await _first_run(tmp_path)
    outcomes = [
        (account, model_id, entry.outcome)
        for account, model_id, entry in session.records
        if entry is not None
    ]
    adopted = [i for i, (_, _, outcome) in enumerate(outcomes) if outcome == "adopted"]
    ready = [i for i, (_, _, outcome) in enumerate(outcomes) if outcome == "ready"]
    assert len(adopted) == READY * len(ACCOUNTS)  # each once, and nothing else adopted
    assert {outcomes[i][1].rsplit("-m", 1)[1] for i in adopted} == {"0", "1", "2"}
    assert len(ready) == MISSING * len(ACCOUNTS)
    # before: each account's adoptions came with its loads' outcomes, at its end
    assert max(adopted) < min(ready), outcomes
    # and the ledger holds them as a record at the end would have
    for name in ACCOUNTS:
        entries = session.current_state([name]).entries(name)
        assert sum(e.outcome == "adopted" for e in entries.values()) == READY


async def test_an_accounts_checkpoint_waits_for_its_adoptions_on_their_way(
    tmp_path: Path, anyio_backend: str
) -> None:
    """Else the checkpoint (a push, on the git store) missed them until the run's end."""
    session = await _first_run(tmp_path, SlowAdoptions(FakeClock()))
    assert isinstance(session, SlowAdoptions)
    assert {len(adopted) for adopted in session.checkpointed.values()} == {READY}


class FullDisk(MemorySession):
    """A ledger that cannot write adoption records."""

    async def record_many(self, account: str, entries: Mapping[str, LedgerEntry | None]) -> None:
        if any(e is not None and e.outcome == "adopted" for e in entries.values()):
            raise LedgerError("cannot write the ledger journal: No space left on device")
        await super().record_many(account, entries)


async def test_a_ledger_that_cannot_write_in_the_lull_ends_the_run_with_its_error(
    tmp_path: Path, anyio_backend: str
) -> None:
    """The error itself (the CLI's one line, exit 1), not a group of groups (a bug, exit 3)."""
    with pytest.raises(LedgerError, match="No space left"):
        await _first_run(tmp_path, FullDisk())


def _plan(account: str, action: Action) -> AccountPlan:
    change = ModelChange(
        model_id="m",
        action=action,
        reason="",
        condition=Condition.MISSING,
        declared=True,
        managed=False,
    )
    return AccountPlan(
        account=account, api=ApiKind.COMMUNITY, live_fingerprint="", changes=(change,)
    )


async def test_the_lull_comes_when_every_account_that_loads_has_passed(
    anyio_backend: str,
) -> None:
    lull = Lull.for_run(
        [_plan("a", Action.LOAD), _plan("b", Action.RELOAD), _plan("c", Action.NOOP)]
    )
    came: list[str] = []

    async def wait() -> None:
        await lull.wait()
        came.append("lull")

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.sleep(0)
        lull.done("a")
        lull.done("c")  # sends nothing: never waited for
        await anyio.sleep(0)
        assert came == []
        lull.done("b")
    assert came == ["lull"]
    quiet = Lull.for_run([_plan("c", Action.NOOP)])  # nothing to load: no wait at all
    with anyio.fail_after(1):
        await quiet.wait()
