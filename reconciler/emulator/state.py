"""The emulated world: accounts, the models they own, and how those models change over time.

Transitions are lazy: a model records *when* its load ends, and :meth:`EmulatorState.advance`
settles everything due by the emulated now (loads ending ``model_ready`` or ``model_failed``,
idle community models being evicted). Two heaps of deadlines (load ends, and the moments idle
time started) make that cost O(models that change), not a scan of every model on every request:
with 10k models a scan was most of what a benchmark of the client measured. Heap entries are
never removed when a record changes; an entry that no longer matches its record is dropped when
it comes up. The app calls it on every request and from a background
ticker, so an in-process test that never runs the lifespan still sees time pass; the ticker is
only needed to fire webhooks without a request.

This is also the in-process handle tests and the demo use (``app.state.emulator``):
:meth:`~EmulatorState.seed_model` creates a model that the tool did not load,
:meth:`~EmulatorState.use_model` keeps one from being evicted.

It knows nothing of HTTP: handlers translate requests into these calls.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from reconciler.api.wire import LoadWebhook
from reconciler.emulator import assumptions as assumed
from reconciler.emulator.clock import EmulatedClock, iso
from reconciler.emulator.config import AccountConfig, EmulatorConfig
from reconciler.emulator.faults import FaultInjector
from reconciler.emulator.persistence import read_state, write_state
from reconciler.emulator.traffic import RequestCounters, SpamFilter
from reconciler.emulator.world import Account, ModelRecord, WebhookDelivery

_Entry = tuple[float, int, str, str, ModelRecord]


class AccountConflict(ValueError):
    """An account with this name or key exists already, configured differently."""


class EmulatorState:
    """Accounts and models, the clock, the settings, and the request-side memories."""

    def __init__(
        self, config: EmulatorConfig, real_clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.settings = config.model_copy(deep=True)
        self.clock = EmulatedClock(config.time_scale, config.start_time, real_clock)
        self.faults = FaultInjector(config.seed)
        self.spam = SpamFilter()
        self.counters = RequestCounters()
        self.webhook_log: list[dict[str, Any]] = []
        self._owed: list[WebhookDelivery] = []
        self.accounts: dict[str, Account] = {}
        self._by_key: dict[str, Account] | None = None  # made on first use after a change
        self._lock = threading.RLock()
        self._order = itertools.count()
        # (emulated time, tie-break, account, model id, record): when a load ends, and when a
        # loaded model was last used (it is evicted idle_evict_seconds later).
        self._due: list[_Entry] = []
        self._idle: list[_Entry] = []
        if config.state_file is not None:
            self._restore()
        for account in config.accounts:
            if account.name not in self.accounts:  # a restored account keeps its models
                self.add_account(account)

    # --- accounts -----------------------------------------------------------------------

    def add_account(self, config: AccountConfig) -> Account:
        """Add an account; adding the same one again is a no-op.

        Raises:
            AccountConflict: the name or the key is taken by a differently configured account.
        """
        with self._lock:
            existing = self.accounts.get(config.name)
            if existing is not None and existing.config == config:
                return existing
            if existing is not None or self.account_for_key(config.key) is not None:
                raise AccountConflict(f"account {config.name!r} or its key exists already")
            self.accounts[config.name] = account = Account(config)
            self._by_key = None
            self.save()
            return account

    def for_each_account(self, action: Callable[[Account], object]) -> None:
        """Run ``action`` on every account, under the state's lock."""
        with self._lock:
            for account in self.accounts.values():
                action(account)

    def account_for_key(self, key: object) -> Account | None:
        """The account a key belongs to, if any (every request asks: an index, not a scan)."""
        index = self._by_key
        if index is None:  # built under the lock: an account added meanwhile must be in it
            with self._lock:
                index = self._by_key
                if index is None:
                    index = self._by_key = {a.config.key: a for a in self.accounts.values()}
        return index.get(key) if isinstance(key, str) else None

    # --- models: the in-process helpers -------------------------------------------------

    def seed_model(
        self,
        account: str,
        model_id: str,
        spec: dict[str, Any] | None = None,
        status: str = assumed.READY,
    ) -> ModelRecord:
        """Put a model on an account directly, as if loaded long ago by someone else.

        ``status`` is ``model_ready``, ``model_failed``, ``evicted`` or ``model_loading`` (the
        load then ends after ``load_seconds`` from now).
        """
        if status not in assumed.MODEL_STATUSES:
            raise ValueError(f"status must be one of {assumed.MODEL_STATUSES}")
        with self._lock:
            now = self.clock.now()
            record = ModelRecord(model_id, dict(spec or {}), status, created_at=now)
            if status == assumed.LOADING:
                record.started_at, record.due_at = now, now + self.settings.load_seconds
            else:
                record.ready_at = now if status == assumed.READY else None
                record.last_used_at = now
                record.evicted_at = now if status == assumed.EVICTED else None
            self._place(self.accounts[account], record)
            self.save()
            return record

    def use_model(self, account: str, model_id: str) -> None:
        """Mark a loaded model as used now (a generation call), restarting its idle time."""
        with self._lock:
            record = self.accounts[account].models[model_id]
            if record.status in (assumed.READY, assumed.FAILED):
                record.last_used_at = self.clock.now()
                self._watch(account, record)
                self.save()

    def model(self, account: str, model_id: str) -> ModelRecord | None:
        """The record of a model, settled to the emulated now; ``None`` if not owned."""
        self.advance()
        return self.accounts[account].models.get(model_id)

    # --- models: what the API does ------------------------------------------------------

    def start_load(
        self, account: Account, model_id: str, spec: dict[str, Any], webhook: str | None = None
    ) -> ModelRecord:
        """Start loading ``model_id`` with ``spec``, replacing whatever had the id."""
        with self._lock:
            now = self.clock.now()
            record = ModelRecord(model_id, spec, assumed.LOADING, created_at=now, webhook=webhook)
            previous = account.models.pop(model_id, None)
            record.loads = previous.loads if previous else 0
            self._begin(account, record, now, self.settings.load_seconds, reloading=False)
            account.models[model_id] = record
            self.save()
            return record

    def start_reload(self, account: Account, model_id: str) -> str:
        """Reload an owned model; the answer's message (``model_id`` must be owned)."""
        with self._lock:
            record = account.models[model_id]
            if record.status == assumed.LOADING:
                return assumed.LOAD_IN_PROGRESS
            if record.status == assumed.READY:
                record.last_used_at = self.clock.now()
                self._watch(account.name, record)
                self.save()
                return assumed.ALREADY_LOADED
            self._begin(
                account, record, self.clock.now(), self.settings.reload_seconds, reloading=True
            )
            record.evicted_at = None
            self.save()
            return assumed.RELOAD_STARTED

    def delete(self, account: Account, model_id: str) -> bool:
        """Remove a model from the account; whether it was there."""
        with self._lock:
            found = account.models.pop(model_id, None) is not None
            account.loading.discard(model_id)
            self.save()
            return found

    def _begin(
        self, account: Account, record: ModelRecord, now: float, seconds: float, *, reloading: bool
    ) -> None:
        record.status, record.reloading, record.loads = assumed.LOADING, reloading, record.loads + 1
        record.started_at, record.due_at = now, now + seconds
        record.will_fail = self.faults.fails(str(record.spec.get("url", "")))
        account.loading.add(record.model_id)
        self._watch(account.name, record)

    def _place(self, account: Account, record: ModelRecord) -> None:
        """Put ``record`` on the account (replacing its id) and watch its next deadline."""
        account.models[record.model_id] = record
        account.loading.discard(record.model_id)
        if record.status == assumed.LOADING:
            account.loading.add(record.model_id)
        self._watch(account.name, record)

    def _watch(self, account: str, record: ModelRecord) -> None:
        """Note the record's next deadline: its load's end, or the start of its idle time."""
        if record.status == assumed.LOADING and record.due_at is not None:
            entry = (record.due_at, next(self._order), account, record.model_id, record)
            heapq.heappush(self._due, entry)
        elif record.status in (assumed.READY, assumed.FAILED):
            since = record.last_used_at or record.created_at
            heapq.heappush(self._idle, (since, next(self._order), account, record.model_id, record))

    # --- time -----------------------------------------------------------------------------

    def advance(self) -> None:
        """Settle every transition due by the emulated now, noting the webhooks they owe.

        Loads end first, so a load that ended long ago (the clock was advanced) is evicted in
        the same call, as it would have been by then.
        """
        with self._lock:
            now = self.clock.now()
            changed = False
            while self._due and self._due[0][0] <= now:
                _, _, name, _, record = heapq.heappop(self._due)
                account = self._current(name, record)
                if account is not None and record.status == assumed.LOADING:
                    self._owed.extend(self._finish(record))
                    account.loading.discard(record.model_id)
                    self._watch(name, record)
                    changed = True
            changed = self._evict_idle(now) or changed
            if changed:
                self.save()

    def _evict_idle(self, now: float) -> bool:
        idle, changed = self.settings.idle_evict_seconds, False
        while self._idle and self._idle[0][0] + idle <= now:
            since, _, name, _, record = heapq.heappop(self._idle)
            account = self._current(name, record)
            if account is None or not (account.evicts or assumed.ENTERPRISE_EVICTS):
                continue
            if (
                record.status in (assumed.READY, assumed.FAILED)
                and (record.last_used_at or record.created_at) == since
            ):
                record.status, record.evicted_at = assumed.EVICTED, since + idle
                changed = True
        return changed

    def _current(self, name: str, record: ModelRecord) -> Account | None:
        """The record's account if ``record`` is still the model it holds under its id."""
        account = self.accounts.get(name)
        if account is None or account.models.get(record.model_id) is not record:
            return None
        return account

    def take_webhooks(self) -> list[WebhookDelivery]:
        """The webhook calls owed by loads that have ended, each handed out once."""
        with self._lock:
            owed, self._owed = self._owed, []
            return owed

    def _finish(self, record: ModelRecord) -> list[WebhookDelivery]:
        end = record.due_at if record.due_at is not None else self.clock.now()
        record.status = assumed.FAILED if record.will_fail else assumed.READY
        record.due_at, record.last_used_at = None, end
        record.ready_at = None if record.will_fail else end
        if not record.webhook:
            return []
        payload = LoadWebhook(
            status="failed" if record.will_fail else "success",
            model_id=record.model_id,
            message=assumed.WEBHOOK_FAILED if record.will_fail else assumed.WEBHOOK_LOADED,
        )
        return [WebhookDelivery(record.webhook, payload)]

    # --- views and lifecycle --------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything, as ``GET /_emulator/state`` shows it."""
        self.advance()
        with self._lock:
            now = self.clock.now()
            return {
                "now": iso(now),
                "now_seconds": now,
                "settings": self.settings.model_dump(mode="json", exclude={"accounts"}),
                "faults": self.faults.settings.model_dump(mode="json"),
                "accounts": [
                    {
                        "name": account.name,
                        "api": account.config.api,
                        "queue_limit": account.config.queue_limit,
                        "models": [m.as_state() for m in account.models.values()],
                    }
                    for account in self.accounts.values()
                ],
                "webhooks": list(self.webhook_log),
            }

    def reset(self) -> None:
        """Back to the configured start: config accounts only, no models, faults or memories.

        The clock keeps running: emulated time never goes backwards.
        """
        with self._lock:
            self.settings = self.config.model_copy(deep=True)
            self.faults.reset(self.config.seed)
            self.spam.clear()
            self.counters.clear()
            self.webhook_log.clear()
            self._owed.clear()
            self._due.clear()
            self._idle.clear()
            self.accounts = {a.name: Account(a) for a in self.config.accounts}
            self._by_key = None
            self.save()

    def save(self) -> None:
        """Write accounts, models and the emulated now to the state file, if there is one."""
        path = self.settings.state_file
        if path is not None:
            with self._lock:
                write_state(path, self.clock.now(), self._dump_accounts())

    def _dump_accounts(self) -> list[dict[str, Any]]:
        return [
            account.config.model_dump()
            | {"models": [dataclasses.asdict(m) for m in account.models.values()]}
            for account in self.accounts.values()
        ]

    def _restore(self) -> None:
        assert self.config.state_file is not None
        saved = read_state(self.config.state_file)
        if saved is None:
            return
        now, accounts = saved
        if self.config.start_time is None:
            self.clock.catch_up(now)
        for item in accounts:
            models = item.pop("models", [])
            account = Account(AccountConfig.model_validate(item))
            self.accounts[account.name] = account
            self._by_key = None
            for fields in models:
                self._place(account, ModelRecord(**fields))
