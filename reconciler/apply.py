"""Carry out one account's plan against the API: the only module that changes the remote.

For each account, :class:`AccountRun`:

1. sends deletes, then loads, reloads and replaces, keeping at most ``queue_limit`` loads in
   progress on the server (counted from the listing, including loads this tool did not start):
   the next load goes out as soon as a listing shows one finished, instead of collecting 429s;
2. re-observes the listing before ever resending a load whose answer was lost (timeout,
   dropped connection, 5xx): a load that landed is never sent twice;
3. waits, polling the account's listing (never each model; the client never repeats an
   identical request inside the spam window), until every touched model is ready or failed or
   the deadline passes;
4. returns each item's outcome and the ledger entries to record.

One item failing does not stop the others; an account failing does not stop other accounts
(the caller runs accounts concurrently). The plan's ``reason`` texts are never consulted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio

from reconciler.api.client import AccountClient
from reconciler.core.events import ProgressSink
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.core.plan import AccountPlan, Action, ModelChange
from reconciler.core.records import LedgerEntry
from reconciler.core.report import FailureReason, ItemReport, Outcome
from reconciler.errors import (
    ApiError,
    ApiUnreachable,
    InvalidKey,
    RateLimited,
    ReconcilerError,
    TransientError,
)

#: How many times one load may be sent when its answers keep getting lost.
MAX_SEND_ATTEMPTS = 3

#: Conditions in which a model's load has ended.
_SETTLED = frozenset({Condition.READY, Condition.FAILED})


@dataclass(frozen=True)
class ApplyOptions:
    """How ``apply`` runs: waiting, its deadline and its polling pace."""

    wait: bool = True
    timeout: float = 1800.0  # seconds from the start of the run until waiting gives up
    poll_interval: float = 30.0  # seconds between two listings of one account


@dataclass
class _Item:
    """The progress of one planned change during the run."""

    change: ModelChange
    outcome: Outcome | None = None
    failure: FailureReason | None = None
    message: str = ""
    sent: bool = False
    attempts: int = 0

    def finish(
        self, outcome: Outcome, message: str = "", failure: FailureReason | None = None
    ) -> None:
        self.outcome, self.message, self.failure = outcome, message, failure


@dataclass
class AccountRun:
    """One account's apply: schedule, send, re-observe, wait. Holds no key."""

    plan: AccountPlan
    client: AccountClient
    live: LiveState
    options: ApplyOptions
    progress: ProgressSink
    deadline: float
    items: dict[str, _Item] = field(default_factory=dict)
    #: Whether the remote changed since ``live`` was last listed.
    stale: bool = False

    async def run(self) -> None:
        """Carry out the plan; errors end up in the items, never raised (but for bugs)."""
        self.items = {c.model_id: _Item(c) for c in self.plan.changes}
        try:
            await self._delete_all()
            await self._load_all()
            if self.options.wait:
                await self._wait_until_settled()
        except ApiError as exc:  # a bad key, or a listing that kept failing: stop the account
            self._fail_unfinished(exc)
        self._settle_items()

    # -- deletes --------------------------------------------------------------------------

    async def _delete_all(self) -> None:
        for item in self._items_with(Action.DELETE):
            try:
                await self.client.delete(item.change.model_id)
            except InvalidKey:
                raise
            except ReconcilerError as exc:
                item.finish(Outcome.FAILED, str(exc), exc.failure_reason)
                continue
            item.sent = self.stale = True
            item.finish(Outcome.DONE, "deleted")
            self.progress.event(self.plan.account, f"- deleted {item.change.model_id}")

    # -- loads, reloads, replaces under the queue limit ------------------------------------

    async def _load_all(self) -> None:
        queue = [
            item
            for item in self.items.values()
            if item.change.action in (Action.LOAD, Action.RELOAD, Action.REPLACE)
        ]
        while queue:
            if self._in_flight() >= self.client.queue_limit:
                if time.monotonic() >= self.deadline:
                    for item in queue:
                        item.finish(
                            Outcome.TIMED_OUT,
                            "the queue never freed up before the deadline",
                            "not-converged",
                        )
                    return
                await self._poll()
                continue
            item = queue.pop(0)
            await self._send(item)
            self._report("applying")

    def _in_flight(self) -> int:
        """Loads in progress on the server for this account, as far as we can tell."""
        loading = {
            m.model_id for m in self.live.models.values() if m.condition is Condition.LOADING
        }
        if self.plan.api == "enterprise":  # loading models are not listed: count our own
            loading |= {
                model_id
                for model_id, item in self.items.items()
                if item.sent
                and item.outcome is None
                and self.live.condition(model_id) is not Condition.READY
            }
        return len(loading)

    async def _send(self, item: _Item) -> None:
        change = item.change
        while item.attempts < MAX_SEND_ATTEMPTS:
            item.attempts += 1
            try:
                await self._request(change)
            except InvalidKey:
                raise
            except RateLimited as exc:
                item.finish(Outcome.FAILED, str(exc), "apply-failed")
                return
            except TransientError as exc:
                # The answer was lost or unclear: look before sending the same load again.
                if await self._landed(change):
                    break
                item.message = str(exc)
                continue
            except ReconcilerError as exc:
                item.finish(Outcome.FAILED, str(exc), exc.failure_reason)
                return
            break
        else:
            item.finish(
                Outcome.FAILED,
                f"gave up after {MAX_SEND_ATTEMPTS} attempts: {item.message}",
                "api-unreachable",
            )
            return
        item.sent = self.stale = True
        self._mark_loading(change.model_id)
        self.progress.event(
            self.plan.account,
            f"{change.action.symbol} {change.action.value} {change.model_id} sent",
        )

    async def _request(self, change: ModelChange) -> None:
        if change.action is Action.RELOAD and self.plan.api == "community":
            await self.client.reload(change.model_id)
        else:  # load, replace, and an enterprise "reload" (load_model again, design.md §3)
            await self.client.load(change.model_id, change.spec)

    async def _landed(self, change: ModelChange) -> bool:
        """Re-observe the listing: did a load whose answer was lost reach the server?

        An enterprise server does not list a model while it loads, so there a lost answer
        cannot be told from a load that never arrived: it is never resent, and the wait shows
        whether the model appears.
        """
        if self.plan.api == "enterprise":
            return True
        try:
            await self._refresh()
        except ApiUnreachable:
            return False
        now = self.live.condition(change.model_id)
        if change.action is Action.RELOAD:
            return now is not Condition.EVICTED
        if change.action is Action.REPLACE:
            return now is Condition.LOADING
        return now in (Condition.LOADING, Condition.READY)

    def _mark_loading(self, model_id: str) -> None:
        """Until the next listing, count a sent load as in progress.

        Without this, a replace on enterprise (whose listing shows the old model ready until
        the new load ends, and then does not list it while it loads) would look settled at once.
        """
        models = dict(self.live.models)
        models[model_id] = LiveModel(model_id, Condition.LOADING, "model_loading")
        self.live = LiveState(self.live.account, models)

    # -- waiting ----------------------------------------------------------------------------

    async def _wait_until_settled(self) -> None:
        while self._waiting_on():
            if time.monotonic() >= self.deadline:
                return
            await self._poll()

    def _waiting_on(self) -> list[_Item]:
        return [
            item
            for item in self.items.values()
            if item.outcome is None
            and (item.sent or item.change.action is Action.WAIT)
            and self.live.condition(item.change.model_id) not in _SETTLED
        ]

    async def _poll(self) -> None:
        remaining = self.deadline - time.monotonic()
        await anyio.sleep(max(0.0, min(self.options.poll_interval, remaining)))
        await self._refresh()
        self._report("waiting")

    async def _refresh(self) -> None:
        self.live = await self.client.read_live()
        self.stale = False

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
            elif now is Condition.READY:
                item.finish(Outcome.DONE, "ready")
            elif now is Condition.FAILED:
                item.finish(Outcome.FAILED, "the load ended model_failed", "apply-failed")
            elif not self.options.wait:
                item.finish(Outcome.SENT, f"sent; {now.value} when last seen")
            else:
                item.finish(
                    Outcome.TIMED_OUT, f"still {now.value} at the deadline", "not-converged"
                )

    def _fail_unfinished(self, exc: ApiError) -> None:
        for item in self.items.values():
            if item.outcome is None and item.change.action.is_change:
                item.finish(
                    Outcome.FAILED if item.sent else Outcome.SKIPPED, str(exc), exc.failure_reason
                )

    def _report(self, phase: str) -> None:
        self.progress.account_update(self.plan.account, phase, self.counts())

    def counts(self) -> dict[str, int]:
        """How many of the touched models are in each condition (``deleted`` for deletes)."""
        counts: dict[str, int] = {}
        for item in self.items.values():
            if item.change.action.is_change:
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

    def ledger_updates(
        self, previous: Mapping[str, LedgerEntry], now: datetime | None = None
    ) -> dict[str, LedgerEntry | None]:
        """The ledger entries this run leaves behind (None removes an entry)."""
        stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        updates: dict[str, LedgerEntry | None] = {}
        for model_id, item in self.items.items():
            change = item.change
            if change.action is Action.DELETE and item.outcome is Outcome.DONE:
                updates[model_id] = None
            elif (
                change.action is Action.NOOP
                and change.declared
                and change.spec
                and (model_id not in previous)
            ):
                updates[model_id] = _entry(change, stamp, "adopted", 0)
            elif change.spec and (item.sent or change.action is Action.WAIT):
                updates[model_id] = _entry_after(change, item, previous.get(model_id), stamp)
        return updates


def _entry_after(
    change: ModelChange, item: _Item, before: LedgerEntry | None, stamp: str
) -> LedgerEntry | None:
    if change.action is Action.RELOAD and before is not None:
        # A reload brings back the spec that was loaded, which may not be the declared one.
        outcome = "ready" if item.outcome is Outcome.DONE else "applied"
        return before.model_copy(update={"applied_at": stamp, "outcome": outcome})
    if item.outcome is Outcome.DONE:
        return _entry(change, stamp, "ready", 0)
    if item.outcome is Outcome.FAILED:
        same = before is not None and before.spec_hash == change.spec_hash
        return _entry(change, stamp, "failed", (before.failures if same and before else 0) + 1)
    return _entry(change, stamp, "applied", 0)


def _entry(change: ModelChange, stamp: str, outcome: str, failures: int) -> LedgerEntry:
    return LedgerEntry.model_validate(
        {
            "spec_hash": change.spec_hash,
            "spec": change.spec,
            "applied_at": stamp,
            "outcome": outcome,
            "failures": failures,
        }
    )
