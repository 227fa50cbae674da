"""Carry out one account's plan against the API: the only module that changes the remote.

For each account, :class:`AccountApply`:

1. sends deletes, then loads, reloads and replaces, keeping at most ``queue_limit`` loads in
   progress on the server (counted from the listing, including loads this tool did not start):
   the next load goes out as soon as a listing shows one finished, instead of collecting 429s;
2. re-observes the listing before ever resending a load whose answer was lost (timeout,
   dropped connection, 5xx): it is resent only when the listing proves it did not land; when
   the listing cannot tell (or cannot be read), it is never resent, and the item stays
   *unconfirmed* until a later listing proves it landed: an unconfirmed load is reported as
   failed and leaves the ledger as it was, so the next run looks again;
3. waits, polling the account's listing (never each model; the client never repeats an
   identical request inside the spam window), until every touched model is ready or failed or
   the deadline passes;
4. records each accepted request in the ledger at once (through ``record``), so that an
   interrupted run still leaves a true ledger, and returns each item's outcome and the final
   ledger entries.

One item failing does not stop the others; an account failing does not stop other accounts
(the caller runs accounts concurrently). The plan's ``reason`` texts are never consulted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

import anyio

from reconciler.api.client import Accepted, AccountClient
from reconciler.api.gather import both
from reconciler.clock import Clock
from reconciler.core.events import ProgressSink
from reconciler.core.ledger_entries import LedgerEntry, parse_stamp, stamp
from reconciler.core.ledger_fold import LedgerEvent, next_entry
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.core.plan import DEFAULT_LOAD_GRACE, AccountPlan, Action, ModelChange
from reconciler.core.report import FailureReason, ItemReport, Outcome
from reconciler.errors import (
    ApiError,
    InvalidKey,
    LedgerError,
    RateLimited,
    ReconcilerError,
    TransientError,
)

#: How many times one load may be sent when its answers keep getting lost.
MAX_SEND_ATTEMPTS = 3

#: Polls of one account are at least this many spam windows apart, leaving other runs a gap
#: in which the same listing is not refused.
SHARE_MARGIN = 1.1

#: Accounts that poll on their interval while no load time is known yet (see
#: :class:`LoadTimes`); their first polls are staggered by a share of the interval, so that
#: together they see the first load end sooner than one account's polls would.
SCOUTS = 8

#: While scouts find out how long a load takes, another account polls at most this many
#: intervals apart: its loads may be quicker than theirs.
WAIT_FOR_SCOUTS = 4.0

#: Seconds the other accounts wait at most for the first scouts' first loads to be answered
#: before they send their own (see :meth:`LoadTimes.for_run`).
LEAD_WAIT = 2.0

#: The actions that take a place in the account's queue on the server.
_QUEUED = (Action.LOAD, Action.RELOAD, Action.REPLACE)


def _loads_of(plan: AccountPlan) -> int:
    """How many loads ``plan`` sends (each takes a place in the account's queue)."""
    return sum(c.action in _QUEUED for c in plan.changes)


#: Conditions in which a model's load has ended.
_SETTLED = frozenset({Condition.READY, Condition.FAILED})


@dataclass(frozen=True)
class ApplyOptions:
    """How ``apply`` runs: waiting, its deadline and its polling pace."""

    wait: bool = True
    timeout: float = 1800.0  # seconds from the start of the run until waiting gives up
    poll_interval: float = 30.0  # seconds between two listings of one account
    #: Seconds an enterprise load this run sent, and that the server does not list yet, keeps
    #: its place in the queue. Enterprise servers never list a failed load, so without a bound
    #: one bad url would hold a place until the deadline; past it, the server's own queue
    #: limit (a 429 the client retries) decides.
    load_grace: float = DEFAULT_LOAD_GRACE


class _Landing(Enum):
    """What a listing says of a load whose answer was lost."""

    LANDED = "landed"
    NOT_LANDED = "not-landed"
    UNKNOWN = "unknown"


#: Makes ledger entries (by model id) durable as soon as they are known (None removes an
#: entry), together; awaited before a request is sent, so that the intent is on disk first
#: (write-ahead).
Recorder = Callable[[Mapping[str, LedgerEntry | None]], Awaitable[None]]


async def _ignore_record(entries: Mapping[str, LedgerEntry | None]) -> None:
    """The recorder of a run without a ledger."""


@dataclass
class _Item:
    """The progress of one planned change during the run."""

    change: ModelChange
    outcome: Outcome | None = None
    failure: FailureReason | None = None
    message: str = ""
    sent: bool = False
    attempts: int = 0
    #: When the accepted request's answer came (its load started at the latest then).
    sent_at: float = 0.0
    #: When the accepted request left (its load started at the earliest then).
    requested_at: float = 0.0
    #: The answer to the request was lost and no listing has proved it landed yet.
    unconfirmed: bool = False
    #: A wait for an earlier run's load that never appeared: it is now sent as a load.
    resent: bool = False
    #: Its intent is on disk, and no request has been sent since.
    intent_noted: bool = False
    #: A listing has shown the load this run sent ended (ready or failed).
    seen_ready: bool = False
    #: The API accepted it, then the run stopped on the key: the load may still finish.
    interrupted: bool = False

    def finish(
        self, outcome: Outcome, message: str = "", failure: FailureReason | None = None
    ) -> None:
        self.outcome, self.message, self.failure = outcome, message, failure


@dataclass
class Awaited:
    """Accounts something waits for, until none is left (at once when there was none): the
    leading scouts' first loads (:class:`LoadTimes`), every account's (:class:`Lull`)."""

    names: set[str] = field(default_factory=set)
    _none_left: anyio.Event = field(default_factory=anyio.Event)

    def __post_init__(self) -> None:
        if not self.names:
            self._none_left.set()

    def done(self, name: str) -> None:
        """``name`` is no longer waited for."""
        self.names.discard(name)
        if not self.names:
            self._none_left.set()

    async def wait(self) -> None:
        """Until none is left."""
        await self._none_left.wait()


@dataclass
class LoadTimes:
    """How long a load has taken in this run: the shortest seen, shared by every account.

    The API says nothing of load times ("tens of seconds to minutes"), so apply learns them:
    once one load was seen ready, a listing is not asked for before the earliest load still
    running can be done. That saves listings (polling stays independent of the number of
    models) without seeing a finished load later than a poll interval would.

    Both ends are taken so that the estimate is never early: a load's time is learnt from when
    its request *left* (an upper bound: the server started it later), and a running load is
    expected done that long after its answer *came* (the server started it before), less half
    the quickest round trip of the run's loads: a server starts a request about halfway
    through its round trip, and the listing that sees it ready is read as far into its own.
    Half, not all of it: a server that starts some loads at the end of their round trip and
    others at the start would be listed too early, which costs a whole interval. What an answer
    took beyond the quickest (the server's queue, a busy client) still counts: under load,
    when answers come late, pairing with when the request left polled too early and listed
    again. A listing's own instant is when its request was written (its last attempt), not
    when the poll began: one that waited for a retry would learn too short a time.

    Until a first load is seen to end, only :data:`SCOUTS` accounts poll on their interval
    (their first polls staggered when other accounts wait for them: a later first poll costs
    a scout, and buys the others a finer estimate); the others wait until one of them has
    learnt the time (at most :data:`WAIT_FOR_SCOUTS` intervals), instead of every account
    listing once too early: over 100 accounts that was a listing pass more than needed.

    The first scouts send their first loads before the other accounts send theirs
    (:meth:`for_run`): a load sent in the same instant as hundreds of others waits in the
    server's queue, and the time learnt from it would be that much too long for every account.
    """

    shortest: float | None = None
    #: The accounts (by name) polling on their interval until a load time is known; None for
    #: a place an account left (the others keep their stagger).
    scouts: list[str | None] = field(default_factory=list)
    #: Waits to end as soon as a load time is learnt.
    _waiting: set[anyio.CancelScope] = field(default_factory=set)
    #: Whether the scouts' first polls are staggered (other accounts wait for what they learn).
    stagger: bool = False
    #: Scouts whose first loads have not been answered yet (see :meth:`for_run`).
    _leading: Awaited = field(default_factory=Awaited)
    #: The quickest round trip of a load accepted in this run (see above).
    quickest_answer: float | None = None

    @classmethod
    def for_run(cls, plans: Sequence[AccountPlan]) -> LoadTimes:
        """The learning of a run: :data:`SCOUTS` accounts with loads lead it, fewest first.

        A scout may list just before its loads end and then wait out the spam window: with
        few loads (one wave) that costs only its last listing, never a whole second wave.
        """
        queued = {p.account: _loads_of(p) for p in plans}
        leaders = sorted((name for name, n in queued.items() if n), key=lambda a: (queued[a], a))
        return cls(
            scouts=list(leaders[:SCOUTS]),
            stagger=len(leaders) > SCOUTS,
            _leading=Awaited(set(leaders[:SCOUTS])),
        )

    async def after_leaders(self, account: str, clock: Clock) -> None:
        """Wait (at most :data:`LEAD_WAIT`) until the leading scouts' first loads are answered."""
        if account in self._leading.names or not self._leading.names:
            return
        async with anyio.create_task_group() as group:

            async def give_up() -> None:
                await clock.sleep(LEAD_WAIT)
                group.cancel_scope.cancel()

            group.start_soon(give_up)
            await self._leading.wait()
            group.cancel_scope.cancel()

    def led(self, account: str) -> None:
        """``account``'s first loads were answered (or it will send none)."""
        self._leading.done(account)

    def saw(self, seconds: float) -> None:
        """A load was seen ready ``seconds`` after it was sent (an upper bound of its time)."""
        if seconds > 0 and (self.shortest is None or seconds < self.shortest):
            first = self.shortest is None
            self.shortest = seconds
            if first:
                self._wake_the_waiting()

    def answered(self, seconds: float) -> None:
        """A load was accepted ``seconds`` after its request left."""
        if seconds >= 0 and (self.quickest_answer is None or seconds < self.quickest_answer):
            self.quickest_answer = seconds

    def ahead(self) -> float | None:
        """How long after its answer came a load can be done (None while none was seen ready):
        the time learnt, less half the quickest round trip (see the class)."""
        if self.shortest is None:
            return None
        return self.shortest - (self.quickest_answer or 0.0) / 2

    def scout_number(self, account: str) -> int | None:
        """``account``'s place among the scouts (taking a free one), or None when all are taken."""
        if account not in self.scouts:
            if None in self.scouts:  # a place an account left, with its stagger
                self.scouts[self.scouts.index(None)] = account
            elif len(self.scouts) < SCOUTS:
                self.scouts.append(account)
            else:
                return None
        return self.scouts.index(account)

    def leave(self, account: str) -> None:
        """``account`` cannot or need not learn more: its place goes to an account that waits."""
        if account in self.scouts:
            self.scouts[self.scouts.index(account)] = None
            self._wake_the_waiting()  # one of them takes the place

    def _wake_the_waiting(self) -> None:
        for scope in self._waiting:
            scope.cancel()

    @contextmanager
    def until_learnt(self) -> Iterator[None]:
        """A block that ends early (quietly) when a load time is learnt or a scout's place frees."""
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                yield
            finally:
                self._waiting.discard(scope)


@dataclass
class Lull(Awaited):
    """A run's first quiet time: every account that sends loads has its first ones answered.

    Until then, the client's CPU is what spaces the loads of the first wave (issue 11); after
    it, every account waits a load's time for its next listing. Records that could be written
    at any time of a run are written then (by the engine, for every account still running),
    not at each account's end, where a hundred accounts' outcomes, checkpoints and reports
    come together after the last listings: the models an account adopts (declared, ready, not
    in the ledger), 9,000 records in a first run over 100 accounts of 100 models. An account
    that ends before the lull (nothing to load, a refused key) records them at its end. Its
    names are the accounts whose first loads are not answered yet.
    """

    @classmethod
    def for_run(cls, plans: Sequence[AccountPlan]) -> Lull:
        """The lull of a run of ``plans``: it comes when their accounts' first loads are in."""
        return cls({p.account for p in plans if _loads_of(p)})


@dataclass
class AccountApply:
    """One account's apply: schedule, send, re-observe, wait. Holds no key."""

    plan: AccountPlan
    client: AccountClient
    live: LiveState
    options: ApplyOptions
    progress: ProgressSink
    deadline: float
    #: The account's ledger entries as they were before the run.
    previous: Mapping[str, LedgerEntry] = field(default_factory=dict)
    record: Recorder = _ignore_record
    items: dict[str, _Item] = field(default_factory=dict)
    #: The account's ledger entries as this run has recorded them so far.
    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    #: The run's clock, the client's (set at construction): every wait and instant of apply.
    clock: Clock = field(init=False, repr=False)
    #: When the run started, on the clock (set at construction).
    started: float = field(init=False)
    #: When the account was last listed (the plan's listing counts as at the start).
    last_listed: float = field(init=False)
    load_times: LoadTimes = field(default_factory=LoadTimes)
    #: The run's lull, told when this account's first loads are answered.
    lull: Lull | None = None
    #: Whether the remote changed since ``live`` was last listed.
    stale: bool = False
    #: The last listing error while waiting, shown if the wait ends without an answer.
    listing_error: str = ""
    #: Whether this account has polled as a scout (see :class:`LoadTimes`).
    scouted: bool = False
    #: Whether the coming listing was held back waiting for the scouts (see ``_refresh``).
    held_back: bool = False
    #: :meth:`_changing`'s list, and the items mapping it was made from.
    _changing_items: list[_Item] = field(default_factory=list, init=False, repr=False)
    _changing_of: dict[str, _Item] | None = field(default=None, init=False, repr=False)
    #: The ids :attr:`live` shows loading, and the live state they were taken from.
    _loading: set[str] = field(default_factory=set, init=False, repr=False)
    _loading_of: LiveState | None = field(default=None, init=False, repr=False)
    #: The live state whose mapping is apply's own copy (see :meth:`_mark_loading`).
    _own_live: LiveState | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.clock = self.client.clock
        self.started = self.last_listed = self.clock.now()

    async def run(self) -> None:
        """Carry out the plan; errors end up in the items, never raised (but for bugs)."""
        self.items = {c.model_id: _Item(c) for c in self.plan.changes}
        self.entries = dict(self.previous)
        self._date_earlier_loads()
        try:
            await self._delete_all()
            await self._load_all()
            if self.options.wait:
                await self._wait_until_settled()
        except InvalidKey as exc:  # nothing more can succeed on this account
            self._fail_unfinished(exc)
        finally:
            self._first_loads_answered()
            self.load_times.leave(self.plan.account)
        self._settle_items()

    def _first_loads_answered(self) -> None:
        """Nobody need wait for this account's first loads any more (see :class:`Lull`)."""
        self.load_times.led(self.plan.account)
        if self.lull is not None:
            self.lull.done(self.plan.account)

    async def record_adoptions(self) -> None:
        """Record the models this account adopts, ahead of :meth:`record_outcomes` (which then
        finds them in the ledger): how they end is known from the plan (see :class:`Lull`)."""
        at = stamp(self.clock.utcnow())
        adopted = {
            item.change.model_id: self._fold(item, LedgerEvent.ADOPTED, at)
            for item in self.items.values()
            if self.final_event(item) is LedgerEvent.ADOPTED
        }
        if adopted:
            await self.record(adopted)

    def _date_earlier_loads(self) -> None:
        """Give each wait for an earlier run's load the time that load may have been sent.

        On enterprise such a load is not listed until done; from that time on, the load grace
        runs, after which the load is taken for lost and sent again (see :meth:`_resend_lost`).
        """
        now_mono, now_utc = self.clock.now(), self.clock.utcnow()
        for model_id, item in self.items.items():
            entry = self.entries.get(model_id)
            if item.change.action is not Action.WAIT or entry is None:
                continue
            at = entry.pending.at if entry.pending is not None else entry.applied_at
            item.sent_at = now_mono - _age(at, now_utc)

    # -- deletes --------------------------------------------------------------------------

    async def _delete_all(self) -> None:
        for item in self._items_with(Action.DELETE):
            await self._note(item, LedgerEvent.INTENT)
            try:
                await self.client.delete(item.change.model_id, deadline=self.deadline)
            except InvalidKey:
                raise
            except ReconcilerError as exc:
                item.finish(Outcome.FAILED, str(exc), exc.failure_reason)
                continue
            item.sent = self.stale = True
            item.finish(Outcome.DONE, "deleted")
            await self._note(item, LedgerEvent.DELETED)
            self.progress.event(self.plan.account, f"- deleted {item.change.model_id}")

    # -- loads, reloads, replaces under the queue limit ------------------------------------

    async def _load_all(self) -> None:
        queue = [item for item in self.items.values() if item.change.action in _QUEUED]
        if not queue:
            return
        free = self.client.queue_limit - self._in_flight()
        if free <= 0:  # a leader that must list before it can send: nobody waits for it
            self._first_loads_answered()
        # The first wave's intents go to disk while the leaders' loads are on their way; the
        # next wave's while the listing that frees its places is out. Stopped before their
        # requests left, they are taken back.
        async with self._taken_back_if_stopped(list(queue)):
            await self._note_intents_shielded(queue[: max(0, free)])
            await self.load_times.after_leaders(self.plan.account, self.clock)
            while queue:
                if self._in_flight() >= self.client.queue_limit:
                    if self.clock.now() >= self.deadline:
                        for item in queue:
                            item.finish(
                                Outcome.TIMED_OUT,
                                "the queue never freed up before the deadline",
                                "not-converged",
                            )
                        return
                    await self._poll(all_sent=False, upcoming=queue)
                    continue
                free = self.client.queue_limit - self._in_flight()
                wave, queue = queue[:free], queue[free:]
                await self._send_wave(wave)
                self._first_loads_answered()
                self._report("applying")

    @asynccontextmanager
    async def _taken_back_if_stopped(self, noted: Sequence[_Item]) -> AsyncIterator[None]:
        """A block after which the intents of ``noted`` not sent yet are taken back if it fails.

        Stopped (Ctrl-C) while intents noted ahead of their requests wait: the next run must not
        wait for loads that were never sent (see :meth:`_abandon_unsent`). Best effort: the
        stop goes on.
        """
        try:
            yield
        except BaseException:
            with anyio.CancelScope(shield=True), suppress(ReconcilerError):
                await self._abandon_unsent(noted)
            raise

    async def _send_wave(self, wave: list[_Item]) -> None:
        """Send a queue's worth of loads at once: the API's queue, not this tool, is the limit.

        Their intents are made durable together (one journal write). An invalid key stops the
        account: the first one is re-raised once the wave's other requests have ended.
        """
        await self._note_intents_shielded(wave)
        if len(wave) == 1:
            await self._send(wave[0])
            return
        refused: list[InvalidKey] = []

        async def send(item: _Item) -> None:
            try:
                await self._send(item)
            except InvalidKey as exc:
                refused.append(exc)

        async with anyio.create_task_group() as group:
            for item in wave:
                group.start_soon(send, item)
        if refused:
            raise refused[0]

    def _in_flight(self) -> int:
        """Loads in progress on the server for this account, as far as we can tell."""
        if self.plan.api.caps.lists_loading:
            return len(self._listed_loading())
        now = self.clock.now()  # loading models are unlisted: count our own
        return sum(1 for item in self._changing() if self._holds_place(item, now))

    def _holds_place(self, item: _Item, now: float) -> bool:
        """Whether ``item`` is one of the loads :meth:`_in_flight` counts."""
        if self.plan.api.caps.lists_loading:
            return item.change.model_id in self._listed_loading()
        return (
            item.outcome is None
            and self.live.condition(item.change.model_id) is not Condition.READY
            and (
                (item.sent and now - item.sent_at < self.options.load_grace)
                # a load an earlier run sent, not listed yet: it holds a place too
                or (
                    item.change.action is Action.WAIT
                    and now - self.started < self.options.load_grace
                )
            )
        )

    def _listed_loading(self) -> set[str]:
        """The ids :attr:`live` shows loading: found once per listing, then kept up to date by
        :meth:`_mark_loading` (a scan of every model per load sent was O(models × loads))."""
        if self._loading_of is not self.live:
            self._loading_of = self.live
            self._loading = {
                m.model_id for m in self.live.models.values() if m.condition is Condition.LOADING
            }
        return self._loading

    def _changing(self) -> list[_Item]:
        """The items apply acts on or waits for (not no-ops, not blocked): what a poll's loops
        visit, so that a poll costs O(changes), not O(declared models)."""
        if self._changing_of is not self.items:
            self._changing_of = self.items
            self._changing_items = [i for i in self.items.values() if i.change.action.is_change]
        return self._changing_items

    async def _send(self, item: _Item) -> None:
        change = item.change
        await self._note_intents([item])  # on disk before the request can leave
        item.intent_noted = False  # a later send of the item (a resend) notes it again
        answered: float | None = None  # when the accepted request's answer came, if it did
        while item.attempts < MAX_SEND_ATTEMPTS:
            item.attempts += 1
            # Before the request: if its answer is lost but a listing proves it landed, the
            # load started after this instant (a safe, if loose, start for learning its time).
            item.requested_at = self.clock.now()
            try:
                accepted = await self._request(change)
                item.requested_at = accepted.sent_at
                answered = accepted.answered_at
                if answered is None:  # the transport did not say: now is after the answer
                    answered = self.clock.now()
            except InvalidKey:
                await self._note(item, LedgerEvent.ABANDONED)
                raise
            except RateLimited as exc:
                await self._note(item, LedgerEvent.ABANDONED)
                item.finish(Outcome.FAILED, str(exc), "apply-failed")
                return
            except TransientError as exc:
                # The answer was lost or unclear: look before sending the same load again.
                landing = await self._landed(change)
                if landing is _Landing.NOT_LANDED:
                    item.message = str(exc)
                    continue
                if landing is _Landing.UNKNOWN:
                    item.unconfirmed = True
                    item.message = f"the answer was lost ({exc}) and no listing confirmed the load"
                break
            except ReconcilerError as exc:
                await self._note(item, LedgerEvent.ABANDONED)
                item.finish(Outcome.FAILED, str(exc), exc.failure_reason)
                return
            break
        else:  # every attempt was proved not to have landed
            await self._note(item, LedgerEvent.ABANDONED)
            item.finish(
                Outcome.FAILED,
                f"gave up after {MAX_SEND_ATTEMPTS} attempts: {item.message}",
                "api-unreachable",
            )
            return
        item.sent = self.stale = True
        # Without an answer (lost, and a listing proved it landed or could not tell), the
        # load started before now at the latest.
        item.sent_at = self.clock.now() if answered is None else answered
        if answered is not None:
            self.load_times.answered(answered - item.requested_at)
        if not item.unconfirmed:  # else the intent stays: the next run looks again
            await self._note(item, LedgerEvent.ACCEPTED)
        self._mark_loading(change.model_id)
        self.progress.event(
            self.plan.account,
            f"{change.action.symbol} {change.action.value} {change.model_id} sent",
        )

    async def _request(self, change: ModelChange) -> Accepted:
        """Send the change; refused requests are retried until the run's deadline at most."""
        if change.action is Action.RELOAD and not self.plan.api.caps.reload_is_load:
            return await self.client.reload(change.model_id, deadline=self.deadline)
        # load, replace, and an enterprise "reload" (load_model again, design.md §3)
        return await self.client.load(change.model_id, change.spec, deadline=self.deadline)

    async def _landed(self, change: ModelChange) -> _Landing:
        """Re-observe the listing: did a load whose answer was lost reach the server?

        Resending is safe only when the listing proves the load did not land: on community, a
        landed load shows ``model_loading`` at once. When the listing cannot be read, or cannot
        tell (an enterprise server does not list a loading model; a new load over a loading
        one looks like the old), the answer is unknown and the load is never resent.
        """
        try:
            await self._refresh()
        except ReconcilerError:
            return _Landing.UNKNOWN
        now = self.live.condition(change.model_id)
        if _shows_new_load(change.condition, now):
            return _Landing.LANDED
        if self.plan.api.caps.lists_loading and change.condition is not Condition.LOADING:
            return _Landing.NOT_LANDED
        return _Landing.UNKNOWN

    def _mark_loading(self, model_id: str) -> None:
        """Until the next listing, count a sent load as in progress.

        Without this, a replace on enterprise (whose listing shows the old model ready until
        the new load ends, and then does not list it while it loads) would look settled at once.
        The listing's mapping is copied once per listing, then marked in place: a copy per load
        sent was O(models × loads): 2 accounts of 20k models, 1,000 loads each, spent 1–2 s of
        CPU on it.
        """
        if self._own_live is not self.live:
            loading = self._listed_loading()
            self.live = self._own_live = LiveState(self.live.account, dict(self.live.models))
            self._loading_of = self.live  # the same ids: carried over, not found again
            self._loading = set(loading)
        models = self.live.models
        assert isinstance(models, dict)  # apply's own copy, made above
        models[model_id] = LiveModel(model_id, Condition.LOADING, "model_loading")
        self._loading.add(model_id)

    # -- waiting ----------------------------------------------------------------------------

    async def _wait_until_settled(self) -> None:
        while self._waiting_on():
            if self.clock.now() >= self.deadline:
                return
            await self._poll(all_sent=True)
            await self._resend_lost()

    async def _resend_lost(self) -> None:
        """On enterprise, send again a load that never appeared within the load grace.

        An enterprise server lists a model only once loaded and never lists a failed load, so
        an unlisted model past the grace is a load that failed or never arrived (its answer
        lost, or an interrupted run's intent): sending it again is a retry, not a duplicate.
        Bounded by :data:`MAX_SEND_ATTEMPTS` and by the queue.
        """
        if self.plan.api.caps.lists_loading:
            return
        now = self.clock.now()
        for item in self._changing():
            model_id = item.change.model_id
            entry = self.entries.get(model_id)
            never_answered = item.unconfirmed or (
                item.change.action is Action.WAIT
                and not item.sent
                and entry is not None
                and entry.pending is not None
            )
            overdue = (
                never_answered  # an accepted load is never sent again: it may just be slow
                and item.outcome is None
                and item.change.spec
                and self.live.condition(model_id) is Condition.MISSING
                and now - item.sent_at > self.options.load_grace
                and item.attempts < MAX_SEND_ATTEMPTS
            )
            if overdue and self._in_flight() < self.client.queue_limit:
                item.unconfirmed = False
                item.resent = item.change.action is Action.WAIT
                self.progress.event(
                    self.plan.account,
                    f"{model_id}: not listed {self.options.load_grace:g} s after its load; "
                    "sending it again",
                )
                await self._send(item)

    def _waiting_on(self) -> list[_Item]:
        return [
            item
            for item in self._changing()
            if item.outcome is None
            and (item.sent or item.change.action is Action.WAIT)
            and self.live.condition(item.change.model_id) not in _SETTLED
        ]

    async def _poll(self, *, all_sent: bool, upcoming: Sequence[_Item] = ()) -> None:
        """Wait for the next listing and list again; a failed listing is a skipped poll.

        The next listing comes a poll interval after the last one (not after the end of the
        last wait), and never sooner than the spam window plus a margin: polling at exactly
        the spam window would keep the identical listing refused for any other run (a pull
        request's plan during a scheduled repair) for as long as this one waits. Once a load
        time is known, not before a running load can be done: the earliest while loads wait
        for its place in the queue; once ``all_sent``, the last (one listing then sees a whole
        wave whose answers came apart, where one at the earliest would see part of it), but
        never later than an interval after the earliest (what polling for the earliest and
        then on the interval would do). Before a load time is known, see :class:`LoadTimes`.

        The intents of the first of ``upcoming`` (the loads waiting for a place), as many as
        the listing should show places free, are written meanwhile: the wave then leaves as
        the listing answers, not a journal write later (under a wave of a hundred accounts
        the write waited for the loop as long as the listing's answer did). No more: an
        intent on disk for a request not sent yet is a load the next run would wait for, if
        this one were killed.
        """
        await self._wait_for_poll(all_sent)
        upcoming = upcoming[: self._places_due()]
        try:
            if any(not item.intent_noted for item in upcoming):
                await both(self._refresh_in_place, lambda: self._note_intents_shielded(upcoming))
            else:
                await self._refresh_in_place()
        except (InvalidKey, LedgerError):
            raise
        except ReconcilerError as exc:
            self.listing_error = str(exc)
            self.progress.event(self.plan.account, f"listing failed, trying again: {exc}")
            self.load_times.leave(self.plan.account)  # a scout that cannot list: another one
            return
        self._report("waiting")

    async def _refresh_in_place(self) -> None:
        """List; a scout whose listing outlasts an interval (retries) gives its place meanwhile.

        Else the accounts that wait for the scouts would wait :data:`WAIT_FOR_SCOUTS` intervals
        on each wave while a scout's listing keeps being refused.
        """
        if self.plan.account not in self.load_times.scouts:
            await self._refresh()
            return
        failed: list[ReconcilerError] = []
        async with anyio.create_task_group() as group:

            async def overdue() -> None:
                await self.clock.sleep(self._interval())
                self.load_times.leave(self.plan.account)

            group.start_soon(overdue)
            try:
                await self._refresh()
            except ReconcilerError as exc:  # raised below, outside the group: not as a group
                failed.append(exc)
            finally:
                group.cancel_scope.cancel()
        if failed:
            raise failed[0]

    def _interval(self) -> float:
        """The least time between two listings of the account (see :meth:`_poll`)."""
        return max(self.options.poll_interval, self.client.spam_window * SHARE_MARGIN)

    async def _wait_for_poll(self, all_sent: bool) -> None:
        interval = self._interval()
        while True:
            wake = self.last_listed + interval
            learning = self.load_times.shortest is None and self._running()
            scout = self.load_times.scout_number(self.plan.account) if learning else None
            if not learning:
                self.load_times.leave(self.plan.account)
                earliest, latest = self._done_by()
                wake = max(wake, min(latest, earliest + interval) if all_sent else earliest)
            elif scout is not None:
                if not self.scouted:
                    # Timed from when its loads left: the scouts sample the time since then.
                    # (From the plan's listing, 20 ms earlier, the grid of their listings
                    # missed 1 s loads by a hair and learnt them 70 ms too long.)
                    wake = max(self.last_listed, self._first_requested()) + interval
                    if self.load_times.stagger:  # listings at other instants
                        wake += interval * scout / SCOUTS
                self.scouted = True
                if await self._sleep_unless_learnt(min(wake, self.deadline)):
                    continue  # learnt meanwhile (by another scout): time it by this one's loads
                return
            else:
                wake = min(self.last_listed + interval * WAIT_FOR_SCOUTS, self.deadline)
                with self.load_times.until_learnt():
                    await self._sleep_until(wake)
                if self.clock.now() < wake:
                    continue  # a load time was learnt: wait for this account's loads
                self.held_back = True
                return
            await self._sleep_until(min(wake, self.deadline))
            return

    async def _sleep_unless_learnt(self, until: float) -> bool:
        """Sleep until ``until``; True if a load time was learnt first (the sleep cut short)."""
        while self.clock.now() < until:
            with self.load_times.until_learnt():
                await self._sleep_until(until)
            if self.load_times.shortest is not None and self.clock.now() < until:
                return True
        return False

    async def _sleep_until(self, instant: float) -> None:
        await self.clock.sleep(max(0.0, instant - self.clock.now()))

    def _running(self) -> bool:
        """Whether a load this run sent is still running, as far as the listings say."""
        return any(
            item.sent and item.outcome is None and not item.seen_ready for item in self._changing()
        )

    def _first_requested(self) -> float:
        """When the first load still running left (0 if none)."""
        return min(
            (
                item.requested_at
                for item in self._changing()
                if item.sent and item.outcome is None and not item.seen_ready
            ),
            default=0.0,
        )

    def _done_by(self) -> tuple[float, float]:
        """When the earliest and the latest load still running can be done, as far as known."""
        running = [
            item.sent_at
            for item in self._changing()
            if item.sent and item.outcome is None and not item.seen_ready
        ]
        ahead = self.load_times.ahead()
        if ahead is None or not running:
            return 0.0, 0.0
        return min(running) + ahead, max(running) + ahead

    def _places_due(self) -> int:
        """The places the coming listing should show free: the free ones, and those held by
        this run's loads that can be done by now (none while no load time is known)."""
        free = self.client.queue_limit - self._in_flight()
        ahead = self.load_times.ahead()
        if ahead is not None:
            now = self.clock.now()
            free += sum(
                1
                for item in self._changing()
                if item.sent
                and item.outcome is None
                and not item.seen_ready
                and item.sent_at + ahead <= now
                and self._holds_place(item, now)  # else it is not counted in flight
            )
        return max(0, free)

    async def _refresh(self) -> None:
        listed = self.last_listed = self.clock.now()
        self.live = await self.client.read_live(deadline=self.deadline)
        if self.live.asked_at is not None:  # when the request that was answered left
            listed = max(listed, self.live.asked_at)
        self.stale = False
        for item in self._changing():
            model_id = item.change.model_id
            if item.sent and not item.seen_ready and self.live.condition(model_id) in _SETTLED:
                item.seen_ready = True
                # Not over a ready model (an enterprise server lists the old one until the new
                # load ends), nor from a poll held back while scouts learnt: too long a time,
                # which only ever shortens, would hold every later listing of the run back.
                if item.change.condition is not Condition.READY and not self.held_back:
                    self.load_times.saw(listed - item.requested_at)
        self.held_back = False
        await self._confirm_landed()

    async def _confirm_landed(self) -> None:
        """A listing that proves an unconfirmed load landed confirms it (and records it)."""
        for item in self._changing():
            if item.unconfirmed and _shows_new_load(
                item.change.condition, self.live.condition(item.change.model_id)
            ):
                item.unconfirmed = False
                item.message = ""
                await self._note(item, LedgerEvent.ACCEPTED)

    async def refresh_quietly(self) -> None:
        """List once more for the final re-plan; keep the last view if the listing fails."""
        try:
            await self._refresh()
        except ReconcilerError as exc:
            self.progress.event(self.plan.account, f"final listing failed: {exc}")

    # -- outcomes ---------------------------------------------------------------------------

    def _settle_items(self) -> None:
        for model_id, item in self.items.items():
            if item.outcome is not None:
                continue
            action = item.change.action
            now = self.live.condition(model_id, declared=item.change.declared)
            if action in (Action.NOOP, Action.BLOCKED):
                outcome = Outcome.BLOCKED if action is Action.BLOCKED else Outcome.UNCHANGED
                item.finish(outcome, item.change.reason)
            elif not item.sent and action is not Action.WAIT:
                item.finish(Outcome.SKIPPED, item.message or "not attempted", "apply-failed")
            elif item.unconfirmed:
                item.finish(
                    Outcome.FAILED,
                    f"{item.message}; the next run looks again",
                    "api-unreachable",
                )
            elif now is Condition.READY:
                item.finish(Outcome.DONE, "ready")
            elif now is Condition.FAILED:
                item.finish(Outcome.FAILED, "the load ended model_failed", "apply-failed")
            elif not self.options.wait:
                item.finish(Outcome.SENT, f"sent; {now.value} when last seen")
            else:
                why = f" (last listing: {self.listing_error})" if self.listing_error else ""
                item.finish(
                    Outcome.TIMED_OUT, f"still {now.value} at the deadline{why}", "not-converged"
                )

    def _fail_unfinished(self, exc: ApiError) -> None:
        """Stop on a refused key: what was sent failed for the run, but not in the ledger."""
        for item in self.items.values():
            if item.outcome is None and item.change.action.is_change:
                item.interrupted = item.sent
                item.finish(
                    Outcome.FAILED if item.sent else Outcome.SKIPPED, str(exc), exc.failure_reason
                )

    def _report(self, phase: str) -> None:
        self.progress.account_update(self.plan.account, phase, self.counts())

    def counts(self) -> dict[str, int]:
        """How many of the touched models are in each condition (``deleted`` for deletes)."""
        counts: dict[str, int] = {}
        for item in self._changing():
            key = self._shown_condition(item)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def _shown_condition(self, item: _Item) -> str:
        """The condition to show; a sent load an enterprise server does not list yet is loading."""
        now = self.live.condition(item.change.model_id)
        if item.change.action is Action.DELETE:
            return "deleted" if item.outcome is Outcome.DONE else now.value
        if item.sent and now is Condition.MISSING:
            return Condition.LOADING.value
        return now.value

    def _items_with(self, action: Action) -> list[_Item]:
        return [item for item in self.items.values() if item.change.action is action]

    # -- results ----------------------------------------------------------------------------

    def item_reports(self) -> tuple[ItemReport, ...]:
        """Each item's outcome, in the plan's order."""
        return tuple(
            ItemReport(
                model_id=item.change.model_id,
                action=item.change.action,
                outcome=item.outcome or Outcome.SKIPPED,
                condition=self.live.condition(item.change.model_id, declared=item.change.declared),
                failure_reason=item.failure,
                message=item.message,
            )
            for item in self.items.values()
        )

    async def record_outcomes(self) -> None:
        """Record what became of each item, once the run is over (see :meth:`final_event`).

        All in one write: these follow what already happened (nothing is sent after them), so
        they need not be durable one by one; an account adopting 10k models waits once.
        """
        outcomes: dict[str, LedgerEntry | None] = {}
        at = stamp(self.clock.utcnow())  # one instant for the run's end of the account
        for item in self.items.values():
            event = self.final_event(item)
            if event is not None:
                outcomes[item.change.model_id] = self._fold(item, event, at)
        if outcomes:
            await self.record(outcomes)

    def final_event(self, item: _Item) -> LedgerEvent | None:
        """The ledger event an item's end leaves, or None when its entry stays as it is.

        An unconfirmed load leaves its intent in place: the ledger must not claim a spec the
        server may never have received, and the next run must know the load may be in flight.
        A load the API accepted before the run stopped on a refused key stays accepted: it may
        still finish, and the next run (with a good key) sees how it ended.
        """
        change = item.change
        entry = self.entries.get(change.model_id)
        now = self.live.condition(change.model_id)
        if not change.spec or item.unconfirmed or item.interrupted:
            return None  # see above: the entry stays as the request left it
        if change.action is Action.DELETE:
            return None  # a delete's entry went with its answer
        if change.action is Action.NOOP:
            if not change.declared:
                return None
            if entry is None:
                return LedgerEvent.ADOPTED
            if _confirms(entry, change.spec_hash, now):
                return LedgerEvent.READY  # the load an interrupted run sent has finished
            return None
        if item.intent_noted and not item.sent:
            return LedgerEvent.ABANDONED  # its intent went to disk, its request never left
        if not (item.sent or change.action is Action.WAIT):
            return None
        if item.outcome is Outcome.DONE:
            return LedgerEvent.READY
        if item.outcome is Outcome.FAILED:
            return LedgerEvent.FAILED
        if entry is not None and entry.pending is not None and not item.sent:
            # an interrupted run's load, waited for: accepted once a listing shows it
            return LedgerEvent.ACCEPTED if now is Condition.LOADING else None
        if (
            not self.plan.api.caps.lists_loading
            and item.sent
            and now is Condition.MISSING
            and self.clock.now() - item.sent_at > self.options.load_grace
        ):
            return LedgerEvent.FAILED  # never listed within the grace: counts as a failed load
        return LedgerEvent.ACCEPTED

    async def _note_intents(self, items: Sequence[_Item]) -> None:
        """Record the intent of each item about to be sent (unless it is noted already)."""
        todo = [item for item in items if not item.intent_noted]
        if todo:
            await self.record(
                {item.change.model_id: self._fold(item, LedgerEvent.INTENT) for item in todo}
            )
            for item in todo:
                item.intent_noted = True

    async def _note_intents_shielded(self, items: Sequence[_Item]) -> None:
        """:meth:`_note_intents`, finished even if the listing beside it fails: a record that
        is written is marked, so that it is taken back if its request is never sent."""
        with anyio.CancelScope(shield=True):
            await self._note_intents(items)

    async def _abandon_unsent(self, items: Sequence[_Item]) -> None:
        """Take back the intents of ``items`` whose requests never left (see :meth:`final_event`).

        Else the next run would wait for loads that were never sent, up to the load grace.
        """
        unsent = [item for item in items if item.intent_noted and not item.sent]
        if unsent:
            await self.record(
                {i.change.model_id: self._fold(i, LedgerEvent.ABANDONED) for i in unsent}
            )
            for item in unsent:
                item.intent_noted = False

    async def _note(self, item: _Item, event: LedgerEvent) -> None:
        """Fold ``event`` into the item's entry and record it (durably) at once."""
        await self.record({item.change.model_id: self._fold(item, event)})

    def _fold(self, item: _Item, event: LedgerEvent, at: str | None = None) -> LedgerEntry | None:
        """The item's entry with ``event`` folded in (stamped ``at``, else now), kept as the
        run's current entry."""
        change = item.change
        entry = next_entry(
            self.entries.get(change.model_id),
            event,
            action=Action.LOAD.value if item.resent else change.action.value,
            spec=change.spec,
            spec_hash=change.spec_hash,
            at=at or stamp(self.clock.utcnow()),
        )
        if entry is None:
            self.entries.pop(change.model_id, None)
        else:
            self.entries[change.model_id] = entry
        return entry


def _confirms(entry: LedgerEntry, spec_hash: str, now: Condition) -> bool:
    """Whether a ready model settles an interrupted run's intent of ``spec_hash``."""
    return (
        entry.pending is not None
        and entry.pending.spec_hash == spec_hash
        and (now is Condition.READY)
    )


def _shows_new_load(before: Condition, now: Condition) -> bool:
    """Whether a listing proves that a load sent while the model was ``before`` landed."""
    if before in (Condition.MISSING, Condition.FAILED, Condition.EVICTED):
        return now in (Condition.LOADING, Condition.READY)
    if before is Condition.READY:  # community lists it loading; enterprise stops listing it
        return now in (Condition.LOADING, Condition.MISSING)
    return False  # over a running load, a new load looks like the old one


def _age(at: str, now: datetime) -> float:
    """Seconds since a stamp of the ledger (0 when it cannot be read)."""
    try:
        then = parse_stamp(at)
    except ValueError:
        return 0.0
    return max(0.0, (now - then).total_seconds())
