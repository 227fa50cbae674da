"""Hypothesis properties of the pure planner: convergence, idempotence and delete safety.

Each example draws a community and an enterprise account over a small pool of model ids
(declared present, absent or not at all; protect, prune, ignore), their live conditions and a
ledger (or none). A simulated ``apply`` carries out the plan's actions; re-planning must then
find nothing to do, and planning again must give the same plan (style.md rule 11).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.ledger_entries import LedgerEntry, LedgerState
from reconciler.core.ledger_fold import LedgerEvent, next_entry
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.core.plan import AccountPlan, Action, Plan, make_plan, plan_account
from reconciler.manifest.models import ACCOUNT_ADAPTER, LoadedAccount, spec_hash

POOL = tuple(f"m{i}" for i in range(8))
URLS = ("org/a", "org/b", "https://civitai.com/api/download/models/1")
WHEN = "2024-01-01T00:00:00Z"
BIG = 10_000  # --max-deletes: out of the way, the never-empty guard is checked on its own

CONDITIONS = {
    "community": (
        Condition.MISSING,
        Condition.LOADING,
        Condition.READY,
        Condition.FAILED,
        Condition.EVICTED,
    ),
    "enterprise": (Condition.MISSING, Condition.READY),
}

PROPERTY_SETTINGS = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class World:
    """Everything the planner reads: the accounts, their live states and the ledger."""

    accounts: tuple[LoadedAccount, ...]
    live: Mapping[str, LiveState]
    ledger: LedgerState | None

    def plan(self) -> Plan:
        return make_plan(self.accounts, self.live, self.ledger, max_deletes=BIG)


# ---------------------------------------------------------------------------------------------
# Strategies. Each model's declaration, live condition and ledger entry is one draw from a
# precomputed list of choices (repeated to weight them): it keeps the examples cheap to
# generate, so 200 of them run in a few seconds, and still shrinks towards the first choice.
# ---------------------------------------------------------------------------------------------

Declaration = tuple[str, bool, str, str] | None  # ensure, protect, url, revision
Record = tuple[str, str, str] | None  # same|different, url, revision

REVISIONS = ("fp16", "fp32")
_PRESENT = [("present", p, u, r) for p in (False, False, True) for u in URLS for r in REVISIONS]
_ABSENT = [("absent", protect, "", "") for protect in (False, False, True)]
# About a quarter undeclared, a half present, a quarter absent; a third protected.
DECLARATIONS = st.sampled_from([None] * 9 + _ABSENT * 3 + _PRESENT)
_DIFFERENT = [("different", u, r) for u in URLS for r in REVISIONS]
# No entry, the declared spec, another spec (which may happen to match): 1 : 1 : 2.
RECORDS = st.sampled_from([None] * 3 + [("same", "", "")] * 3 + _DIFFERENT)
FAILURES = st.sampled_from((0, 0, 0, 1, 2, 3, 4))
PRUNES = st.sampled_from(("none", "managed", "all"))
IGNORES = st.sampled_from(((), (), (), ("m1",), ("m[0-2]",), ("m*7", "x-*")))
LIVE = {api: st.sampled_from(conditions) for api, conditions in CONDITIONS.items()}
OUTCOMES = st.sampled_from(("ready", "applied", "adopted"))


def _fields(api: str, url: str, revision: str) -> dict[str, Any]:
    if api == "community":
        return {
            "url": url,
            "model_format": "safetensors",
            "model_category": "stable_diffusion",
            "revision": revision,
        }
    return {"url": url, "model_type": "huggingface", "revision": revision}


def _account(draw: st.DrawFn, api: str, pool: tuple[str, ...]) -> LoadedAccount:
    models: list[dict[str, Any]] = []
    for model_id in pool:
        declaration: Declaration = draw(DECLARATIONS)
        if declaration is None:
            continue
        ensure, protect, url, revision = declaration
        if ensure == "absent":
            models.append({"model_id": model_id, "ensure": "absent", "protect": protect})
        else:
            models.append({"model_id": model_id, "protect": protect, **_fields(api, url, revision)})
    spec = ACCOUNT_ADAPTER.validate_python(
        {
            "version": 1,
            "account": api,
            "api": api,
            "key_env": "KEY",
            "prune": draw(PRUNES),
            "ignore": list(draw(IGNORES)),
            "models": models,
        }
    )
    return LoadedAccount(spec, "m.yaml", 1, {})


def _live(draw: st.DrawFn, api: str, pool: tuple[str, ...]) -> LiveState:
    models: dict[str, LiveModel] = {}
    for model_id in pool:
        condition: Condition = draw(LIVE[api])
        if condition is not Condition.MISSING:
            models[model_id] = LiveModel(model_id, condition)
    return LiveState(api, models)


def _entries(draw: st.DrawFn, acct: LoadedAccount, pool: tuple[str, ...]) -> dict[str, LedgerEntry]:
    declared = {m.model_id: m.spec for m in acct.desired() if m.ensure == "present"}
    entries: dict[str, LedgerEntry] = {}
    for model_id in pool:
        record: Record = draw(RECORDS)
        if record is None:
            continue
        kind, url, revision = record
        failures: int = draw(FAILURES)
        spec = dict(declared.get(model_id, {"url": URLS[0]}))
        if kind == "different":  # may happen to equal the declared spec: then it is "same"
            spec.update(url=url, revision=revision)
        outcome = "failed" if failures else draw(OUTCOMES)
        entries[model_id] = LedgerEntry(
            spec_hash=spec_hash(spec),
            spec=spec,
            applied_at=WHEN,
            outcome=outcome,
            failures=failures,
        )
    return entries


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """A community and an enterprise account, their live states and a ledger or none."""
    # Small pools make the corner cases (an account emptied, a single model) common.
    pool = POOL[: draw(st.integers(1, len(POOL)))]
    accounts = (_account(draw, "community", pool), _account(draw, "enterprise", pool))
    live = {acct.name: _live(draw, acct.api, pool) for acct in accounts}
    if draw(st.integers(0, 3)) == 0:  # one world in four has no ledger
        return World(accounts, live, None)
    ledger = LedgerState(accounts={a.name: _entries(draw, a, pool) for a in accounts})
    return World(accounts, live, ledger)


# ---------------------------------------------------------------------------------------------
# A simulated apply
# ---------------------------------------------------------------------------------------------


def apply_plan(world: World, plan: Plan) -> World:
    """What a successful ``apply`` of every action does to the live state and the ledger.

    Guards are not honoured here: the never-empty guard is checked separately, and the
    convergence property is about the actions themselves.
    """
    live = {name: dict(state.models) for name, state in world.live.items()}
    ledger = world.ledger
    for account in plan.accounts:
        models = live[account.account]
        for change in account.changes:
            before = ledger.entries(account.account).get(change.model_id) if ledger else None
            if change.action in (Action.LOAD, Action.REPLACE, Action.RELOAD, Action.WAIT):
                models[change.model_id] = LiveModel(change.model_id, Condition.READY)
                events = [LedgerEvent.INTENT, LedgerEvent.ACCEPTED, LedgerEvent.READY]
            elif change.action is Action.DELETE:
                models.pop(change.model_id)
                events = [LedgerEvent.INTENT, LedgerEvent.DELETED]
            elif _adopts(change.action, change.declared, change.managed, bool(change.spec)):
                events = [LedgerEvent.ADOPTED]
            else:
                continue
            entry = before
            for event in events:  # the same fold apply uses, event by event
                entry = next_entry(
                    entry,
                    event,
                    action=change.action.value,
                    spec=change.spec,
                    spec_hash=change.spec_hash,
                    at=WHEN,
                )
            if ledger is not None:
                ledger = ledger.with_entry(account.account, change.model_id, entry)
    states = {name: LiveState(name, models) for name, models in live.items()}
    return World(world.accounts, states, ledger)


def _adopts(action: Action, declared: bool, managed: bool, present: bool) -> bool:
    """A declared, present, ready model the ledger does not know is adopted on apply."""
    return action is Action.NOOP and declared and present and not managed


def _entry(spec: Mapping[str, str], outcome: Any) -> LedgerEntry:
    return LedgerEntry(spec_hash=spec_hash(spec), spec=dict(spec), applied_at=WHEN, outcome=outcome)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(worlds())
def test_applying_a_plan_converges_and_replanning_is_idempotent(world: World) -> None:
    first = world.plan()
    assert first == world.plan()  # pure: same inputs, same plan
    after = apply_plan(world, first)
    _check_never_empty_guard(world, first, after)
    second = after.plan()
    assert not second.has_changes(), [
        (a.account, c.model_id, c.action, c.reason) for a in second.accounts for c in a.actions()
    ]
    assert not second.is_blocked()
    settled = apply_plan(after, second)
    assert settled == after  # nothing left to adopt, load or delete
    third = settled.plan()
    assert third == second
    assert third.digest() == second.digest()


def _check_never_empty_guard(world: World, plan: Plan, after: World) -> None:
    """The guard fires exactly for accounts that held models and would hold none."""
    assert plan.blockers == ()  # --max-deletes is out of the way
    for account in plan.accounts:
        before_ids, after_ids = (
            world.live[account.account].models,
            after.live[account.account].models,
        )
        assert bool(account.blockers) is (bool(before_ids) and not after_ids)


@PROPERTY_SETTINGS
@given(worlds())
def test_no_delete_or_replace_outside_what_the_manifest_allows(world: World) -> None:
    plan = world.plan()
    for acct in world.accounts:
        account_plan = next(a for a in plan.accounts if a.account == acct.name)
        _check_reported(world, acct, account_plan)
        declared = {m.model_id: m for m in acct.desired()}
        entries = world.ledger.entries(acct.name) if world.ledger is not None else {}
        prune = acct.spec.prune
        for change in account_plan.changes:
            model = declared.get(change.model_id)
            ignored = _ignored(acct, change.model_id)
            if change.action is Action.REPLACE:
                assert model is not None and not model.protect and not ignored
                assert world.ledger is not None and change.model_id in entries
            if change.action is not Action.DELETE:
                continue
            assert acct.api == "enterprise"
            assert not ignored
            if model is not None:
                assert model.ensure == "absent" and not model.protect
            else:
                assert prune == "all" or (prune == "managed" and change.model_id in entries)


@PROPERTY_SETTINGS
@given(worlds())
def test_a_plan_of_actions_only_leaves_out_exactly_what_needs_nothing(world: World) -> None:
    """The report's re-plan: the same changes to make and the same guard, nothing else."""
    for acct in world.accounts:
        live = world.live[acct.name]
        full = plan_account(acct, live, world.ledger)
        lean = plan_account(acct, live, world.ledger, actions_only=True)
        assert lean.changes == tuple(c for c in full.changes if c.action.is_change)
        assert lean.blockers == full.blockers
        assert lean.actions() == full.actions()


def _check_reported(world: World, acct: LoadedAccount, account_plan: AccountPlan) -> None:
    """Every declared model and every live, undeclared, not ignored one, once, in id order."""
    ids = [c.model_id for c in account_plan.changes]
    assert ids == sorted(set(ids))
    declared = {m.model_id for m in acct.desired()}
    live_ids = set(world.live[acct.name].models)
    kept = {m for m in live_ids - declared if not _ignored(acct, m)}
    assert set(ids) == declared | kept


def _ignored(acct: LoadedAccount, model_id: str) -> bool:
    return any(fnmatch.fnmatchcase(model_id, glob) for glob in acct.spec.ignore)
