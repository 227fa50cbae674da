"""Make a plan: manifests + live state + ledger → an immutable, serialisable Plan. Pure.

Implements the table of design.md §3 row by row (see :func:`_declared_change` and
:func:`_undeclared_change`), the prune policy, ``ignore``, ``protect``, the retry bound for
failed loads, and the run-level guards (``--max-deletes``, never leave an account empty).
No I/O and no clock: the same inputs always give the same plan, which is what makes a saved
plan comparable and the convergence property testable.

A plan is data only. ``reason`` texts are for people and must not drive decisions; ``apply``
acts on ``action`` alone (as terraform's ``ActionReason``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reconciler.api.kinds import ApiKind
from reconciler.canonical import canonical_json
from reconciler.core.diff import FieldChange, diff_specs
from reconciler.core.inventory import classify_account
from reconciler.core.ledger_entries import LedgerEntry, LedgerState, parse_stamp
from reconciler.core.live import Condition, LiveState
from reconciler.manifest.models import DesiredModel, LoadedAccount

PLAN_FORMAT_VERSION = 1

#: Consecutive failed loads of one spec after which the planner stops retrying it.
MAX_LOAD_ATTEMPTS = 3
DEFAULT_MAX_DELETES = 5
#: Seconds a load this tool sent may go unlisted on an enterprise server (which lists a model
#: only once loaded) before it is taken for lost and sent again.
DEFAULT_LOAD_GRACE = 300.0


class Action(StrEnum):
    """What ``apply`` does to one model. Symbols are what the text renderer prints."""

    LOAD = "load"  # + load_model: missing, or failed and retried
    RELOAD = "reload"  # ↻ model_reload: owned but evicted
    REPLACE = "replace"  # ~ load_model with a new spec over a live model
    DELETE = "delete"  # - delete_model (enterprise only)
    WAIT = "wait"  # … a load is running; apply waits for it
    NOOP = "noop"  # nothing to do; may carry a report (unmanaged, adopted…)
    BLOCKED = "blocked"  # wanted but not allowed or not possible; reported, never done

    @property
    def symbol(self) -> str:
        """The one-character mark of this action in text output."""
        return _SYMBOLS[self]

    @property
    def is_change(self) -> bool:
        """Whether ``apply`` has something to do (``plan --detailed-exitcode`` exits 2)."""
        return self not in (Action.NOOP, Action.BLOCKED)


_SYMBOLS = {
    Action.LOAD: "+",
    Action.RELOAD: "↻",
    Action.REPLACE: "~",
    Action.DELETE: "-",
    Action.WAIT: "…",
    Action.NOOP: " ",
    Action.BLOCKED: "!",
}


class ModelChange(BaseModel):
    """One model of one account: what is, what should be, and what apply will do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str
    action: Action
    reason: str = Field(description="Why, for people only.")
    condition: Condition = Field(description="The live condition the plan saw.")
    declared: bool = Field(description="Whether a manifest declares the model.")
    managed: bool = Field(description="Whether the ledger says this tool loaded it.")
    spec: dict[str, str] = Field(default_factory=dict, description="Load fields to send.")
    spec_hash: str = ""
    fields: tuple[FieldChange, ...] = ()
    origin: str = Field(default="", description="file:line of the declaration.")

    def model_post_init(self, context: object, /) -> None:
        """Share the set of explicitly given field names between changes made alike.

        pydantic keeps that set per instance, and with ten names it is a 728-byte hash table,
        three times the fields themselves: 70 MB of a plan of 100k models. Its content is
        unchanged (``model_fields_set``, ``model_copy`` copy it before adding to it).
        """
        given = self.__pydantic_fields_set__
        shared = _FIELDS_SETS.setdefault(frozenset(given), given)
        if shared is not given:
            object.__setattr__(self, "__pydantic_fields_set__", shared)


#: One set of given field names per combination seen (a handful: one per kind of change).
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


class AccountPlan(BaseModel):
    """The changes of one account, sorted by model id, and the live state they came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    api: ApiKind
    live_fingerprint: str
    changes: tuple[ModelChange, ...] = ()
    blockers: tuple[str, ...] = Field(default=(), description="Why apply must not act.")
    notes: tuple[str, ...] = Field(default=(), description="Things the user should know.")

    def actions(self) -> tuple[ModelChange, ...]:
        """The changes that make apply do something."""
        return tuple(c for c in self.changes if c.action.is_change)


class Plan(BaseModel):
    """The whole plan of a run: JSON-serialisable, versioned, comparable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = PLAN_FORMAT_VERSION
    accounts: tuple[AccountPlan, ...] = ()
    blockers: tuple[str, ...] = Field(default=(), description="Run-level guards that fired.")
    ledger_available: bool = True
    unread: tuple[str, ...] = Field(
        default=(), description="Accounts left out: their live state could not be read."
    )

    def has_changes(self) -> bool:
        """Whether any account has something to do (``--detailed-exitcode`` → 2)."""
        return any(account.actions() for account in self.accounts)

    def is_blocked(self) -> bool:
        """Whether a guard stops the whole run before any request is sent."""
        return bool(self.blockers) or any(a.blockers for a in self.accounts)

    def counts(self) -> dict[str, int]:
        """How many changes of each action, across all accounts (zeros included)."""
        totals = dict.fromkeys((a.value for a in Action), 0)
        for account in self.accounts:
            for change in account.changes:
                totals[change.action.value] += 1
        return totals

    def digest(self) -> str:
        """A hash of what the plan would do: equal plans give equal digests."""
        return plan_digest(self.model_dump(mode="json", include=set(DIGESTED_KEYS)))


#: The keys of a plan's JSON dump that its digest covers.
DIGESTED_KEYS = ("format_version", "accounts", "blockers")


def plan_digest(document: Mapping[str, Any]) -> str:
    """:meth:`Plan.digest` from the plan's JSON dump (``model_dump(mode="json")``), for a
    caller that has the dump already: dumping a plan of 10k models costs 30 ms."""
    data = {key: document[key] for key in DIGESTED_KEYS}
    # Sorted keys: a spec's field order in the YAML must not change the digest.
    return "sha256:" + hashlib.sha256(canonical_json(data).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """When the plan is made, and how long a sent load may stay unseen.

    ``now`` None means "no clock": a load this tool sent never counts as lost, which is the
    safe reading (it is waited for, never sent twice). The engine passes the real time.
    """

    now: datetime | None = None
    load_grace: float = DEFAULT_LOAD_GRACE

    def expired(self, at: str) -> bool:
        """Whether more than the load grace has passed since ``at`` (a ledger stamp)."""
        if self.now is None:
            return False
        try:
            when = parse_stamp(at)
        except ValueError:
            return True  # a stamp that cannot be read cannot hold a load back forever
        return (self.now - when).total_seconds() > self.load_grace


def make_plan(
    accounts: Sequence[LoadedAccount],
    live: Mapping[str, LiveState],
    ledger: LedgerState | None,
    *,
    max_deletes: int = DEFAULT_MAX_DELETES,
    timing: Timing = Timing(),
) -> Plan:
    """Plan every account whose live state is known, then apply the run-level guards.

    ``ledger`` None means no ledger is available: replace and ``prune: managed`` are off and
    each account's notes say so.
    """
    planned = [
        plan_account(account, live[account.name], ledger, timing)
        for account in accounts
        if account.name in live
    ]
    return guarded_plan(planned, ledger is not None, max_deletes=max_deletes)


def guarded_plan(
    planned: Iterable[AccountPlan],
    ledger_available: bool,
    *,
    max_deletes: int = DEFAULT_MAX_DELETES,
) -> Plan:
    """The plan of these account plans (in any order), with the run-level guards applied.

    Accounts may be planned one by one, each as its listing comes in (see the engine); only
    what spans the run is decided here, once every account is planned.
    """
    ordered = tuple(sorted(planned, key=lambda a: a.account))
    deletes = sum(1 for a in ordered for c in a.changes if c.action is Action.DELETE)
    blockers: tuple[str, ...] = ()
    if deletes > max_deletes:
        blockers = (
            f"the plan deletes {deletes} models, more than --max-deletes {max_deletes}; "
            "raise --max-deletes to allow it",
        )
    return Plan(accounts=ordered, blockers=blockers, ledger_available=ledger_available)


def plan_account(
    account: LoadedAccount,
    live: LiveState,
    ledger: LedgerState | None,
    timing: Timing = Timing(),
    *,
    actions_only: bool = False,
) -> AccountPlan:
    """The changes of one account, with the never-empty guard.

    ``actions_only``: only the changes that make apply do something (``action.is_change``),
    the others left out. That is all the report's re-plan after apply needs (what remains to
    do, and the guard, which counts deletes and loads only), and it skips building a change
    for every model that is fine: two thirds of planning it, at the end of every account.
    """
    inventory = classify_account(account, live, ledger)
    has_ledger = inventory.has_ledger
    changes: list[ModelChange] = []
    for model in inventory.models:
        condition = live.condition(model.model_id)
        if model.declaration is not None:
            action, reason = _declared_action(
                model.declaration,
                condition,
                model.entry,
                account,
                has_ledger,
                timing,
                ignored=model.ignored,
            )
        else:
            action, reason = _undeclared_action(model.model_id, model.entry, account)
            condition = Condition.UNMANAGED
        if actions_only and not action.is_change:
            continue
        changes.append(
            _change(
                model.declaration,
                model.model_id,
                (action, reason),
                condition,
                model.entry,
                account,
                ignored=model.ignored,
            )
        )
    notes = (
        ()
        if has_ledger
        else ("no ledger: spec changes (replace) and prune: managed are not detected",)
    )
    return AccountPlan(
        account=account.name,
        api=account.api,
        live_fingerprint=live.fingerprint,
        changes=tuple(changes),
        blockers=_empty_account_guard(live, changes),
        notes=notes,
    )


def _declared_action(
    model: DesiredModel,
    condition: Condition,
    entry: LedgerEntry | None,
    account: LoadedAccount,
    has_ledger: bool,
    timing: Timing,
    *,
    ignored: bool,
) -> tuple[Action, str]:
    """The design table's rows for a declared model."""
    if ignored:
        # "never touched" wins over the declaration, but a declaration is never dropped
        # silently: it is reported, so the contradiction gets fixed in the manifest.
        return Action.BLOCKED, "declared, but matched by ignore; remove it from one of the two"
    if model.ensure == "absent":
        return _absent_action(condition, model.protect, account.api)
    return _present_action(model, condition, entry, has_ledger, account.api, timing)


def _change(
    model: DesiredModel | None,
    model_id: str,
    decided: tuple[Action, str],
    condition: Condition,
    entry: LedgerEntry | None,
    account: LoadedAccount,
    *,
    ignored: bool,
) -> ModelChange:
    """The change of one model, declared (``model``) or not, once its action is decided.

    Only a declared model that must be present carries its spec (and, when it is to be
    loaded, how the spec differs from the one last applied).
    """
    action, reason = decided
    origin = account.origin(model_id)
    managed = entry is not None
    if model is None or ignored or model.ensure == "absent":
        return ModelChange(
            model_id=model_id,
            action=action,
            reason=reason,
            condition=condition,
            declared=model is not None,
            managed=managed,
            origin=origin,
        )
    old_spec = entry.spec if entry is not None else {}
    fields = diff_specs(old_spec, model.spec) if action in (Action.LOAD, Action.REPLACE) else ()
    return ModelChange(
        model_id=model_id,
        action=action,
        reason=reason,
        condition=condition,
        declared=True,
        managed=managed,
        origin=origin,
        spec=model.spec,
        spec_hash=model.spec_hash,
        fields=fields,
    )


def _present_action(
    model: DesiredModel,
    condition: Condition,
    entry: LedgerEntry | None,
    has_ledger: bool,
    api: ApiKind,
    timing: Timing,
) -> tuple[Action, str]:
    """The design table's rows for a model that must be present."""
    if has_ledger and entry is not None:
        in_flight = _possibly_in_flight(model, condition, entry, api, timing)
        if in_flight is not None:
            return in_flight
    changed = has_ledger and entry is not None and entry.spec_hash != model.spec_hash
    if condition is Condition.MISSING:
        if (
            not api.caps.lists_loading
            and entry is not None
            and not changed
            and entry.outcome == "applied"
        ):
            # An API that lists a model only once loaded (enterprise): loading it again would
            # restart the load this tool already sent, until the load grace has passed.
            if not timing.expired(entry.applied_at):
                return Action.WAIT, "a load this tool sent is not listed yet"
            return Action.LOAD, "a load this tool sent never appeared within the load grace"
        if _gave_up(entry, model, changed):
            return Action.BLOCKED, _gave_up_reason(entry)
        return Action.LOAD, "not on the account"
    if condition is Condition.UNKNOWN:
        return Action.BLOCKED, "the API reports a status this version does not know"
    if condition is Condition.FAILED:
        if _gave_up(entry, model, changed):
            return Action.BLOCKED, _gave_up_reason(entry)
        return Action.LOAD, "the last load failed; loading again"
    if changed and not model.protect:
        return Action.REPLACE, "the spec changed since the last apply"
    if condition is Condition.EVICTED:
        # A reload brings back what was loaded: it restores service without replacing.
        kept = (
            "; the spec changed, but it is protected: the loaded spec comes back" if changed else ""
        )
        return Action.RELOAD, "evicted from the inference server after idling" + kept
    if condition is Condition.LOADING:
        return Action.WAIT, "a load is running"
    if changed:
        return Action.BLOCKED, "the spec changed, but the model is protected from replace"
    if entry is None and has_ledger:
        return Action.NOOP, "ready; not loaded by this tool, adopted with the declared spec"
    return Action.NOOP, "ready"


def _gave_up(entry: LedgerEntry | None, model: DesiredModel, changed: bool) -> bool:
    """Whether loads of this spec failed often enough that the planner stops retrying."""
    return (
        entry is not None
        and not changed
        and entry.spec_hash == model.spec_hash
        and entry.failures >= MAX_LOAD_ATTEMPTS
    )


def _gave_up_reason(entry: LedgerEntry | None) -> str:
    failures = entry.failures if entry is not None else 0
    return f"the load failed {failures} times with this spec; change the spec to retry"


def _possibly_in_flight(
    model: DesiredModel,
    condition: Condition,
    entry: LedgerEntry,
    api: ApiKind,
    timing: Timing,
) -> tuple[Action, str] | None:
    """The action for a model with a write-ahead intent of the declared spec, or None.

    An earlier run recorded that it was about to send a request and never saw the answer (it
    was interrupted). The listing decides: a load that landed shows on a community listing at
    once (loading, then ready or failed); an enterprise server lists a model only once loaded,
    so there an unlisted model is waited for until the load grace has passed. The request is
    sent again only where the listing rules out that it landed, or where it cannot tell but a
    resend is the only way not to miss a spec change (a replace over a ready model).
    """
    intent = entry.pending
    if intent is None or intent.action == "delete":
        return None
    if intent.spec_hash != model.spec_hash and not (
        intent.action == "reload" and entry.spec_hash == model.spec_hash
    ):
        return None  # superseded by a newer declaration: the usual rows decide
    if condition is Condition.LOADING:
        return Action.WAIT, "a load an interrupted run sent is running"
    if condition is Condition.READY:
        if intent.action == "replace":
            return Action.REPLACE, (
                "an interrupted run may have sent this replace; the listing cannot confirm it"
            )
        return Action.NOOP, "ready; the load an interrupted run sent has finished"
    if (
        condition is Condition.MISSING
        and not api.caps.lists_loading
        and not timing.expired(intent.at)
    ):
        return Action.WAIT, "a load an interrupted run may have sent is not listed yet"
    return None  # missing, evicted or failed: the request did not land, or ended; usual rows


def _absent_action(condition: Condition, protect: bool, api: ApiKind) -> tuple[Action, str]:
    """The design table's row for ``ensure: absent``."""
    if condition is Condition.MISSING:
        return Action.NOOP, "absent, as declared"
    return _delete_or_block(protect, api, "declared absent")


def _undeclared_action(
    model_id: str, entry: LedgerEntry | None, account: LoadedAccount
) -> tuple[Action, str]:
    """The design table's rows for a live model no manifest declares."""
    prune = account.spec.prune
    managed = entry is not None
    if prune == "all" or (prune == "managed" and managed):
        why = "not declared; prune: all" if prune == "all" else "not declared; loaded earlier "
        return _delete_or_block(False, account.api, why.strip())
    if managed:
        return Action.NOOP, f"not declared; loaded by this tool; kept by prune: {prune}"
    return Action.NOOP, f"unmanaged; kept by prune: {prune}"


def _delete_or_block(protect: bool, api: ApiKind, why: str) -> tuple[Action, str]:
    if protect:
        return Action.BLOCKED, f"{why}, but protected from delete"
    if not api.caps.can_delete:
        return Action.BLOCKED, f"{why}; deleting is not possible through the {api} API"
    return Action.DELETE, why


def _empty_account_guard(live: LiveState, changes: Sequence[ModelChange]) -> tuple[str, ...]:
    """Refuse a plan that would leave an account that holds models with none at all."""
    deleted = sum(1 for c in changes if c.action is Action.DELETE)
    added = sum(1 for c in changes if c.action is Action.LOAD and c.condition is Condition.MISSING)
    if live.models and deleted and len(live.models) - deleted + added <= 0:
        return (
            f"the plan deletes all {deleted} models of the account and loads none; "
            "declare at least one model or delete by hand",
        )
    return ()
