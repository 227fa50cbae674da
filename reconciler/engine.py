"""Run the main job across accounts: read live state, plan, apply, wait, re-plan, report.

The CLI builds the collaborators (manifests, API client, ledger store, progress sink) and calls
one function here. Accounts run concurrently and fail independently: an account whose key is
missing or whose listing cannot be read is reported with its ``failure_reason`` while the
others go on. The pure planning lives in :mod:`reconciler.core.plan`; the requests that change
the remote in :mod:`reconciler.apply`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import httpx

from reconciler.api.client import AccountClient, ApiClient, ClientSettings, resolve_api_base
from reconciler.api.secret import key_from_env
from reconciler.apply import AccountApply, ApplyOptions, LoadTimes, Lull, Recorder
from reconciler.clock import SYSTEM_CLOCK, Clock
from reconciler.core.events import NullProgress, ProgressSink
from reconciler.core.ledger_entries import LedgerEntry, LedgerState
from reconciler.core.live import LiveState
from reconciler.core.plan import (
    DEFAULT_LOAD_GRACE,
    DEFAULT_MAX_DELETES,
    AccountPlan,
    Action,
    Plan,
    Timing,
    guarded_plan,
    plan_account,
)
from reconciler.core.report import AccountReport, ApplyReport, Outcome
from reconciler.errors import (
    ApiUnreachable,
    ConfigError,
    FailureReason,
    LedgerError,
    LedgerLocked,
    PlanBlocked,
    RateLimited,
    ReconcilerError,
    StalePlanError,
)
from reconciler.ledger.store import LedgerSession, LedgerStore
from reconciler.manifest.loader import collector_paused
from reconciler.manifest.models import LoadedAccount


@dataclass(frozen=True)
class AccountFailure:
    """An account that could not be planned or applied at all, and why."""

    account: str
    reason: FailureReason
    message: str


@dataclass(frozen=True)
class PlanResult:
    """A plan with the live states it was made from and the accounts that failed."""

    plan: Plan
    live: Mapping[str, LiveState]
    failures: tuple[AccountFailure, ...] = ()


@dataclass
class ConnectedAccounts:
    """The accounts of a run and a client for each one whose key is available."""

    accounts: tuple[LoadedAccount, ...]
    clients: dict[str, AccountClient] = field(default_factory=dict)
    failures: list[AccountFailure] = field(default_factory=list)
    #: The run's clock (the API client's): deadlines and the planner's "now".
    clock: Clock = SYSTEM_CLOCK

    def account(self, name: str) -> LoadedAccount:
        """The manifest of one account of the run."""
        return next(a for a in self.accounts if a.name == name)


def connect_accounts(
    api: ApiClient,
    accounts: Sequence[LoadedAccount],
    environ: Mapping[str, str],
    api_base_flag: str | None,
) -> ConnectedAccounts:
    """Pair each account with a client; an account without its key is a failure, not a stop."""
    workspace = ConnectedAccounts(tuple(accounts), clock=api.clock)
    for account in accounts:
        try:
            key = key_from_env(account.name, account.spec.key_env, environ)
            base = resolve_api_base(account.spec.api_base, api_base_flag)
        except ReconcilerError as exc:  # this account cannot run; the others go on
            workspace.failures.append(AccountFailure(account.name, exc.failure_reason, str(exc)))
            continue
        workspace.clients[account.name] = api.account(
            account.name, account.api, key, base, account.spec.queue_limit
        )
    return workspace


async def read_live_states(
    clients: Mapping[str, AccountClient],
    deadline: float | None = None,
    on_read: Callable[[str, LiveState], None] | None = None,
) -> tuple[dict[str, LiveState], list[AccountFailure]]:
    """One listing pass per account, all accounts at once; failures are collected.

    ``deadline`` (an instant of the run's clock, such as the end of ``apply --timeout``)
    bounds the listings and their retries; see :meth:`AccountClient.read_live`. ``on_read``
    is called with each live state as it comes in (the planner, while others are in flight).
    """
    live: dict[str, LiveState] = {}
    failures: list[AccountFailure] = []

    async def read(name: str, client: AccountClient) -> None:
        try:
            live[name] = state = await client.read_live(deadline=deadline)
        except ReconcilerError as exc:
            failures.append(AccountFailure(name, exc.failure_reason, str(exc)))
            return
        if on_read is not None:
            on_read(name, state)

    async with anyio.create_task_group() as group:
        for name, client in sorted(clients.items()):
            group.start_soon(read, name, client)
    return live, sorted(failures, key=lambda f: f.account)


def now_timing(load_grace: float = DEFAULT_LOAD_GRACE, clock: Clock = SYSTEM_CLOCK) -> Timing:
    """The planner's view of time for a plan made now (on ``clock``)."""
    return Timing(now=clock.utcnow(), load_grace=load_grace)


async def read_and_plan(
    workspace: ConnectedAccounts,
    ledger: LedgerState | None,
    max_deletes: int = DEFAULT_MAX_DELETES,
    load_grace: float = DEFAULT_LOAD_GRACE,
    deadline: float | None = None,
) -> PlanResult:
    """Read every account's live state and plan against the manifests and the ledger.

    Each account is planned as soon as its listing is in, while the others' are on their way
    (issue 11: planning 10k models after the last listing put 0.14 s before the first load);
    the run-level guards come once every account is planned, before anything is sent.
    """
    timing = now_timing(load_grace, workspace.clock)
    declared = {account.name: account for account in workspace.accounts}
    planned: list[AccountPlan] = []

    def plan_one(name: str, live: LiveState) -> None:
        with collector_paused():  # a change or more per model, none cyclic: see collector_paused
            planned.append(plan_account(declared[name], live, ledger, timing))

    async def resolve_declared() -> None:
        # The declared models do not depend on the live state: resolved (each spec hashed)
        # while the listings are on their way, in the time before their answers come.
        for account in workspace.accounts:
            await anyio.lowlevel.checkpoint()
            with collector_paused():
                account.desired()

    live: dict[str, LiveState] = {}
    failures: list[AccountFailure] = []

    async def read() -> None:
        live_states, read_failures = await read_live_states(workspace.clients, deadline, plan_one)
        live.update(live_states)
        failures.extend(read_failures)

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        group.start_soon(resolve_declared)
    all_failures = (*workspace.failures, *failures)
    plan = guarded_plan(planned, ledger is not None, max_deletes=max_deletes)
    unread = tuple(sorted(f.account for f in all_failures))
    return PlanResult(plan.model_copy(update={"unread": unread}), live, all_failures)


async def check_fresh(
    saved: Plan, workspace: ConnectedAccounts, deadline: float | None = None
) -> dict[str, LiveState]:
    """Re-read the live state of a saved plan's accounts; refuse it if any has moved.

    Raises ConfigError when an account of the plan is not declared or has no key,
    ApiUnreachable (RateLimited if only the rate limits stood in the way) when one cannot be
    read, and StalePlanError (``plan-changed``) when the
    live state of one has changed since the plan was made.
    """
    planned = {a.account for a in saved.accounts}
    unknown = sorted(planned - {a.name for a in workspace.accounts})
    if unknown:
        raise ConfigError(
            f"the saved plan names accounts the manifests do not declare: {', '.join(unknown)}"
        )
    keyless = [f.message for f in workspace.failures if f.account in planned]
    if keyless:
        raise ConfigError("; ".join(keyless))
    live, failures = await read_live_states(
        {name: workspace.clients[name] for name in planned}, deadline
    )
    if failures:
        limited = all(f.reason == "rate-limited" for f in failures)
        raise (RateLimited if limited else ApiUnreachable)(
            "cannot check the saved plan against the live state: "
            + "; ".join(f"{f.account}: {f.message}" for f in failures)
        )
    moved = [a.account for a in saved.accounts if live[a.account].fingerprint != a.live_fingerprint]
    if moved:
        raise StalePlanError(
            f"the live state of {', '.join(moved)} changed since the plan was made; run plan again"
        )
    return live


async def apply_plan(
    run: PlanResult,
    workspace: ConnectedAccounts,
    session: LedgerSession | None,
    options: ApplyOptions,
    progress: ProgressSink | None = None,
    deadline: float | None = None,
) -> ApplyReport:
    """Apply a plan whose live state is current, recording in ``session`` as it goes.

    Refuses a blocked plan (``--max-deletes``, never-empty) before any request is sent, then
    claims the accounts it will write (the git store: LedgerLocked if another run holds one).
    Each request's intent is on disk before it is sent, each answer as soon as it comes, and
    each account's outcomes are recorded, checkpointed (pushed, on the git store) and
    re-planned for the report when its part ends: the last accounts wait for their loads
    then, so the work is done before the last listing rather than after it (the re-plan
    yields once first, so that polls that are due go first). The models an account adopts are
    recorded earlier if it is still running when the run's lull comes
    (:class:`~reconciler.apply.Lull`: every account that loads has its first loads answered).
    ``deadline`` is the run's end (by default ``options.timeout`` from now).
    """
    refuse_blocked(run.plan)
    sink = progress or NullProgress()
    ledger = session.state if session is not None else None
    if session is not None:
        await session.claim(_accounts_to_write(run.plan, ledger))
    if deadline is None:
        deadline = workspace.clock.now() + options.timeout
    reports: dict[str, AccountReport] = {}
    load_times = LoadTimes.for_run(run.plan.accounts)  # learnt by a few, used by all
    lull = Lull.for_run(run.plan.accounts)  # when what can wait is recorded

    def recorder(account: str) -> Recorder:
        async def record(entries: Mapping[str, LedgerEntry | None]) -> None:
            if session is not None:
                await session.record_many(account, entries)

        return record

    applying: list[AccountApply] = []
    #: Held by an account's writes in the lull, and by its end's records and checkpoint: a
    #: checkpoint never misses records of its account still on their way to the journal.
    recording = {account.account: anyio.Lock() for account in run.plan.accounts}

    async def record_in_the_lull() -> None:
        # What needs no answer, recorded while the accounts wait for their loads rather than
        # at their ends (see Lull), every account at once (the journal batches them); an
        # account already recorded has nothing left to adopt.
        await lull.wait()

        async def adopt(account_apply: AccountApply) -> None:
            async with recording[account_apply.plan.account]:
                await account_apply.record_adoptions()

        async with anyio.create_task_group() as adopting:
            for account_apply in applying:
                adopting.start_soon(adopt, account_apply)

    async def apply_one(account_plan: AccountPlan) -> None:
        started = workspace.clock.now()
        name = account_plan.account
        account_apply = AccountApply(
            account_plan,
            workspace.clients[name],
            run.live[name],
            options,
            sink,
            deadline,
            previous=ledger.entries(name) if ledger is not None else {},
            record=recorder(name),
            load_times=load_times,
            lull=lull,
        )
        applying.append(account_apply)
        await account_apply.run()
        if options.wait and account_apply.stale and workspace.clock.now() < deadline:
            await account_apply.refresh_quietly()
        elapsed = workspace.clock.now() - started
        async with recording[name]:
            await account_apply.record_outcomes()
            if session is not None:
                await session.checkpoint([name])
        failed = any(item.failure is not None for item in account_apply.items.values())
        sink.account_update(name, "failed" if failed else "done", account_apply.counts())
        await anyio.lowlevel.checkpoint()  # the polls that are due first
        with collector_paused():
            report_one(account_apply, elapsed)

    def report_one(account_apply: AccountApply, elapsed: float) -> None:
        name = account_apply.plan.account
        after = session.current_state([name]) if session is not None else None
        timing = now_timing(options.load_grace, workspace.clock)
        replanned = plan_account(
            workspace.account(name), account_apply.live, after, timing, actions_only=True
        )
        reports[name] = _account_report(
            account_apply.plan, account_apply, replanned, options, elapsed
        )

    try:
        async with anyio.create_task_group() as group:
            if session is not None:
                group.start_soon(record_in_the_lull)
            for account_plan in run.plan.accounts:
                group.start_soon(apply_one, account_plan)
    except* LedgerError as unwritable:
        # A ledger that cannot be written stops every account (no request may leave before
        # its intent is on disk): the error as it is, not as a group from the accounts' tasks
        # (nor from the lull's, a group within the group).
        raise _first_leaf(unwritable) from None
    finally:
        sink.close()
    failed = [_failed_account_report(f, workspace.account(f.account).api) for f in run.failures]
    ordered = sorted([*reports.values(), *failed], key=lambda r: r.account)
    return ApplyReport(accounts=tuple(ordered), waited=options.wait)


def _first_leaf(group: BaseExceptionGroup[LedgerError]) -> LedgerError:
    """The first error of an exception group, however deep."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _accounts_to_write(plan: Plan, ledger: LedgerState | None) -> list[str]:
    """Accounts whose ledger entries this run may change: actions, or models to adopt."""
    names = []
    for account in plan.accounts:
        entries = ledger.entries(account.account) if ledger is not None else {}
        if account.actions() or any(
            c.declared
            and c.action is Action.NOOP
            and c.spec
            and (c.model_id not in entries or entries[c.model_id].pending is not None)
            for c in account.changes
        ):
            names.append(account.account)
    return names


def refuse_blocked(plan: Plan) -> None:
    """Raise if a guard of the plan stops the run; nothing has been sent yet."""
    if plan.is_blocked():
        reasons = [
            *plan.blockers,
            *(f"{a.account}: {b}" for a in plan.accounts for b in a.blockers),
        ]
        raise PlanBlocked("apply refused before sending anything: " + "; ".join(reasons))


def _account_report(
    account_plan: AccountPlan,
    account_apply: AccountApply,
    replanned: AccountPlan,
    options: ApplyOptions,
    elapsed: float,
) -> AccountReport:
    items = account_apply.item_reports()
    # Without waiting, a model whose request was accepted counts as on its way.
    sent = {i.model_id for i in items if i.outcome is Outcome.SENT}
    remaining = tuple(
        f"{c.action.value} {c.model_id}"
        for c in replanned.actions()
        if options.wait or (c.action.value != "wait" and c.model_id not in sent)
    )
    failed = next((i for i in items if i.failure_reason is not None), None)
    converged = failed is None and not remaining and not replanned.blockers
    reason: FailureReason | None = None
    message = ""
    if failed is not None:
        reason, message = failed.failure_reason, f"{failed.model_id}: {failed.message}"
    elif not converged:
        reason, message = "not-converged", "still to do: " + ", ".join(remaining)
    return AccountReport(
        account=account_plan.account,
        api=account_plan.api,
        converged=converged,
        failure_reason=reason,
        message=message,
        items=items,
        remaining=remaining,
        elapsed_seconds=round(elapsed, 3),
    )


#: The errors :func:`apply_with_ledger` raises only before any request that changes the remote is
#: sent: ``apply`` reports them as a refused run (:func:`refused_report`), not as an error line.
REFUSALS: tuple[type[ReconcilerError], ...] = (
    StalePlanError,
    PlanBlocked,
    LedgerLocked,
    ConfigError,
    ApiUnreachable,
    RateLimited,
)


def refused_report(exc: ReconcilerError) -> ApplyReport:
    """The report of a run refused before it sent anything (stale plan, guard, lock)."""
    return ApplyReport(waited=False, refused=str(exc), refused_reason=exc.failure_reason)


def _failed_account_report(failure: AccountFailure, api: str) -> AccountReport:
    return AccountReport(
        account=failure.account,
        api=api,
        converged=False,
        failure_reason=failure.reason,
        message=failure.message,
    )


# ---------------------------------------------------------------------------------------------
# Entry points: each opens one API client for the whole command
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiAccess:
    """What every command that talks to the API needs."""

    accounts: tuple[LoadedAccount, ...]
    environ: Mapping[str, str]
    api_base: str | None = None
    settings: ClientSettings = field(default_factory=ClientSettings)
    transport: httpx.AsyncBaseTransport | None = None
    #: Every wait, deadline and timestamp of the run; tests pass a ``FakeClock``.
    clock: Clock = SYSTEM_CLOCK


async def plan_accounts(
    config: ApiAccess,
    ledger: LedgerState | None,
    max_deletes: int = DEFAULT_MAX_DELETES,
    load_grace: float = DEFAULT_LOAD_GRACE,
) -> PlanResult:
    """``plan``: read every account and plan it."""
    async with ApiClient(config.settings, config.transport, config.clock) as api:
        workspace = connect_accounts(api, config.accounts, config.environ, config.api_base)
        return await read_and_plan(workspace, ledger, max_deletes, load_grace)


async def apply_accounts(
    config: ApiAccess,
    session: LedgerSession | None,
    options: ApplyOptions,
    *,
    saved: Plan | None = None,
    max_deletes: int = DEFAULT_MAX_DELETES,
    on_plan: Callable[[PlanResult], None] | None = None,
    progress: ProgressSink | None = None,
) -> tuple[PlanResult, ApplyReport]:
    """``apply``: plan afresh (or check a saved plan is still current), then apply it.

    ``on_plan`` sees the plan before anything is sent (the CLI prints it there).
    ``options.timeout`` bounds the whole run, the first listing and its retries included.
    """
    deadline = config.clock.now() + options.timeout
    ledger = session.state if session is not None else None
    async with ApiClient(config.settings, config.transport, config.clock) as api:
        workspace = connect_accounts(api, config.accounts, config.environ, config.api_base)
        if saved is None:
            run = await read_and_plan(workspace, ledger, max_deletes, options.load_grace, deadline)
        else:
            live = await check_fresh(saved, workspace, deadline)
            run = PlanResult(saved, live, tuple(workspace.failures))
        if on_plan is not None:
            on_plan(run)
        report = await apply_plan(run, workspace, session, options, progress, deadline=deadline)
        return run, report


async def read_status(config: ApiAccess) -> tuple[dict[str, LiveState], list[AccountFailure]]:
    """``status``: one listing pass per account."""
    async with ApiClient(config.settings, config.transport, config.clock) as api:
        workspace = connect_accounts(api, config.accounts, config.environ, config.api_base)
        live, failures = await read_live_states(workspace.clients)
        return live, [*workspace.failures, *failures]


def apply_with_ledger(
    config: ApiAccess,
    store: LedgerStore | None,
    options: ApplyOptions,
    *,
    saved: Plan | None = None,
    max_deletes: int = DEFAULT_MAX_DELETES,
    on_plan: Callable[[PlanResult], None] | None = None,
    progress: ProgressSink | None = None,
) -> ApplyReport:
    """``apply`` from start to end, holding the ledger; the ledger is saved as it goes.

    Raises:
        One of :data:`REFUSALS` when the run is refused before it sent anything (a stale
        saved plan, a guard, a held lock or claim, an account that cannot be read). This is
        no error boundary: the CLI's one boundary reports it (:func:`refused_report`).
    """
    holder: list[ApplyReport] = []

    async def main(session: LedgerSession | None) -> None:
        # The result goes through a holder: a large value returned by anyio.run would be
        # formatted into the event loop's task repr at exit, at a cost in the size of the run.
        _, report = await apply_accounts(
            config,
            session,
            options,
            saved=saved,
            max_deletes=max_deletes,
            on_plan=on_plan,
            progress=progress,
        )
        holder.append(report)

    with store.session() if store is not None else contextlib.nullcontext(None) as session:
        anyio.run(functools.partial(main, session))
        notes = tuple(session.notices) if session is not None else ()
    return holder[0].model_copy(update={"notes": notes}) if notes else holder[0]
