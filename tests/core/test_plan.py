"""The planner against design.md §3, row by row, for community and enterprise accounts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from reconciler.core.diff import FieldChange
from reconciler.core.ledger_entries import LedgerEntry, LedgerState
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.core.plan import (
    MAX_LOAD_ATTEMPTS,
    PLAN_FORMAT_VERSION,
    AccountPlan,
    Action,
    ModelChange,
    Plan,
    make_plan,
    plan_account,
)
from reconciler.manifest.models import ACCOUNT_ADAPTER, LoadedAccount, spec_hash

APIS = ("community", "enterprise")
URL = "org/model"
OTHER_URL = "org/model-v2"
WHEN = "2024-01-01T00:00:00Z"
KEEP = "keeper"  # a declared, ready, recorded model that keeps the never-empty guard quiet


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


def entry(
    api: str,
    model_id: str,
    *,
    ensure: str = "present",
    url: str = URL,
    protect: bool = False,
) -> dict[str, Any]:
    """One manifest model entry with the required load fields of ``api``."""
    if ensure == "absent":
        return {"model_id": model_id, "ensure": "absent", "protect": protect}
    fields: dict[str, Any] = (
        {"model_format": "diffusers", "model_category": "stable_diffusion"}
        if api == "community"
        else {"model_type": "huggingface"}
    )
    return {"model_id": model_id, "url": url, "protect": protect, **fields}


def account(
    api: str,
    models: Sequence[Mapping[str, Any]] = (),
    *,
    name: str = "acct",
    prune: str = "none",
    ignore: Sequence[str] = (),
) -> LoadedAccount:
    """A validated account as the loader hands it to the engine."""
    spec = ACCOUNT_ADAPTER.validate_python(
        {
            "version": 1,
            "account": name,
            "api": api,
            "key_env": "KEY",
            "prune": prune,
            "ignore": list(ignore),
            "models": list(models),
        }
    )
    lines = {m["model_id"]: 10 + i for i, m in enumerate(models)}
    return LoadedAccount(spec, "m.yaml", 1, lines)


def live(name: str = "acct", **conditions: Condition) -> LiveState:
    """Live state with one model per keyword (``missing`` ones are simply left out)."""
    models = {
        model_id: LiveModel(model_id, condition)
        for model_id, condition in conditions.items()
        if condition is not Condition.MISSING
    }
    return LiveState(name, models)


def recorded(
    acct: LoadedAccount, model_id: str, *, url: str | None = None, failures: int = 0
) -> LedgerEntry:
    """A ledger entry for the declared spec of ``model_id`` (with another url if given)."""
    desired = {m.model_id: m for m in acct.desired()}
    base = dict(desired[model_id].spec) if model_id in desired else {"url": URL}
    if url is not None:
        base["url"] = url
    return LedgerEntry(
        spec_hash=spec_hash(base),
        spec=base,
        applied_at=WHEN,
        outcome="failed" if failures else "ready",
        failures=failures,
    )


def only(plan: Plan, model_id: str) -> ModelChange:
    """The change of ``model_id`` in a single-account plan."""
    (account_plan,) = plan.accounts
    return next(c for c in account_plan.changes if c.model_id == model_id)


# ---------------------------------------------------------------------------------------------
# The table of design.md §3
# ---------------------------------------------------------------------------------------------

# desired: present | protected | absent | absent-protected | undeclared
# live: a Condition value ("missing" = not on the account)
# ledger: none (no ledger at all) | empty (no entry) | same | changed |
#         same:N / changed:N (N consecutive failures recorded)
# expected: an Action value, or "community action|enterprise action"
# reason: a fragment of the reason text
MAX = MAX_LOAD_ATTEMPTS
# fmt: off
ROWS = [
    # id, desired, live, ledger, prune, expected, reason
    ("present-missing", "present", "missing", "empty", "none", "load", ""),
    ("present-missing-noledger", "present", "missing", "none", "none", "load", ""),
    ("present-missing-recorded", "present", "missing", "same", "none", "load", ""),
    ("protected-missing", "protected", "missing", "empty", "none", "load", ""),
    ("present-evicted", "present", "evicted", "same", "none", "reload", "evicted"),
    ("present-evicted-unrecorded", "present", "evicted", "empty", "none", "reload", ""),
    ("present-evicted-noledger", "present", "evicted", "none", "none", "reload", ""),
    ("present-evicted-changed", "present", "evicted", "changed", "none", "replace", "spec changed"),
    ("protected-evicted-changed", "protected", "evicted", "changed", "none", "reload",
        "protected"),
    ("present-failed", "present", "failed", "empty", "none", "load", "failed"),
    ("present-failed-noledger", "present", "failed", "none", "none", "load", ""),
    ("present-failed-below-bound", "present", "failed", f"same:{MAX - 1}", "none", "load", ""),
    ("present-failed-at-bound", "present", "failed", f"same:{MAX}", "none", "blocked",
        f"failed {MAX} times"),
    ("present-failed-over-bound", "present", "failed", f"same:{MAX + 1}", "none", "blocked",
        "change the spec"),
    ("present-failed-new-spec-resets", "present", "failed", f"changed:{MAX + 1}", "none", "load",
        ""),
    ("present-ready-changed", "present", "ready", "changed", "none", "replace", "spec changed"),
    ("protected-ready-changed", "protected", "ready", "changed", "none", "blocked", "protected"),
    ("present-ready-noledger", "present", "ready", "none", "none", "noop", ""),
    ("present-loading", "present", "loading", "same", "none", "wait", ""),
    ("present-loading-unrecorded", "present", "loading", "empty", "none", "wait", ""),
    ("present-ready-same", "present", "ready", "same", "none", "noop", ""),
    ("protected-ready-same", "protected", "ready", "same", "none", "noop", ""),
    ("present-ready-adopted", "present", "ready", "empty", "none", "noop", "adopted"),
    ("present-unknown", "present", "unknown", "same", "none", "blocked", "status"),
    ("absent-ready", "absent", "ready", "empty", "none", "blocked|delete", ""),
    ("absent-evicted", "absent", "evicted", "same", "none", "blocked|delete", ""),
    ("absent-loading", "absent", "loading", "none", "none", "blocked|delete", ""),
    ("absent-missing", "absent", "missing", "same", "none", "noop", ""),
    ("absent-protected-ready", "absent-protected", "ready", "same", "all", "blocked", "protected"),
    ("absent-protected-evicted", "absent-protected", "evicted", "empty", "none", "blocked",
        "protected"),
    ("absent-protected-missing", "absent-protected", "missing", "empty", "none", "noop", ""),
    ("undeclared-managed-prune-managed", "undeclared", "ready", "same", "managed", "blocked|delete",
        ""),
    ("undeclared-managed-evicted", "undeclared", "evicted", "same", "managed", "blocked|delete",
        ""),
    ("undeclared-managed-prune-all", "undeclared", "ready", "same", "all", "blocked|delete", ""),
    ("undeclared-managed-prune-none", "undeclared", "ready", "same", "none", "noop",
        "kept by prune: none"),
    ("undeclared-unmanaged-prune-none", "undeclared", "ready", "empty", "none", "noop",
        "unmanaged"),
    ("undeclared-unmanaged-prune-managed", "undeclared", "ready", "empty", "managed", "noop",
        "unmanaged"),
    ("undeclared-unmanaged-prune-all", "undeclared", "loading", "empty", "all", "blocked|delete",
        "prune: all"),
    ("undeclared-noledger-prune-managed", "undeclared", "ready", "none", "managed", "noop", ""),
    ("undeclared-noledger-prune-all", "undeclared", "ready", "none", "all", "blocked|delete", ""),
]
# fmt: on


def _scenario(
    api: str, desired: str, condition: Condition, ledger_kind: str, prune: str
) -> tuple[LoadedAccount, LiveState, LedgerState | None]:
    models = [entry(api, KEEP)]
    if desired != "undeclared":
        models.append(
            entry(
                api,
                "m",
                ensure="absent" if desired.startswith("absent") else "present",
                protect=desired in ("protected", "absent-protected"),
            )
        )
    acct = account(api, models, prune=prune)
    state = live(**{KEEP: Condition.READY, "m": condition})
    if ledger_kind == "none":
        return acct, state, None
    ledger = LedgerState().with_entry("acct", KEEP, recorded(acct, KEEP))
    if ledger_kind != "empty":
        kind, _, failures = ledger_kind.partition(":")
        url = OTHER_URL if kind == "changed" else None
        ledger = ledger.with_entry(
            "acct", "m", recorded(acct, "m", url=url, failures=int(failures or 0))
        )
    return acct, state, ledger


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("desired", "condition", "ledger_kind", "prune", "expected", "reason"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_design_table(
    api: str,
    desired: str,
    condition: str,
    ledger_kind: str,
    prune: str,
    expected: str,
    reason: str,
) -> None:
    acct, state, ledger = _scenario(api, desired, Condition(condition), ledger_kind, prune)
    plan = make_plan([acct], {"acct": state}, ledger)
    change = only(plan, "m")
    community, _, enterprise = expected.partition("|")
    want = Action(enterprise if enterprise and api == "enterprise" else community)
    assert change.action is want, change.reason
    assert reason in change.reason
    if enterprise and api == "community":
        assert "not possible through the community API" in change.reason
    assert change.declared is (desired != "undeclared")
    assert change.condition is (
        Condition.UNMANAGED if desired == "undeclared" else Condition(condition)
    )
    assert only(plan, KEEP).action is Action.NOOP
    assert not plan.is_blocked()


@pytest.mark.parametrize("api", APIS)
def test_undeclared_models_show_as_unmanaged_with_their_ledger_status(api: str) -> None:
    acct = account(api, [entry(api, KEEP)], prune="none")
    ledger = LedgerState().with_entry("acct", "mine", recorded(acct, KEEP))
    plan = make_plan(
        [acct],
        {"acct": live(keeper=Condition.READY, mine=Condition.READY, theirs=Condition.READY)},
        ledger,
    )
    mine, theirs = only(plan, "mine"), only(plan, "theirs")
    assert (mine.condition, mine.declared, mine.managed) == (Condition.UNMANAGED, False, True)
    assert (theirs.condition, theirs.declared, theirs.managed) == (
        Condition.UNMANAGED,
        False,
        False,
    )
    assert mine.spec == {} and mine.fields == ()


@pytest.mark.parametrize("api", APIS)
def test_without_ledger_the_notes_say_replace_is_off(api: str) -> None:
    acct = account(api, [entry(api, "m")])
    without = make_plan([acct], {"acct": live(m=Condition.READY)}, None)
    with_ledger = make_plan([acct], {"acct": live(m=Condition.READY)}, LedgerState())
    assert not without.ledger_available and with_ledger.ledger_available
    (notes,) = (a.notes for a in without.accounts)
    assert any("replace" in note and "ledger" in note for note in notes)
    assert with_ledger.accounts[0].notes == ()
    assert only(without, "m").reason == "ready"  # not "adopted": nothing records it


@pytest.mark.parametrize("api", APIS)
def test_failure_bound_counts_only_the_same_spec(api: str) -> None:
    acct = account(api, [entry(api, KEEP), entry(api, "m")])
    state = {"acct": live(keeper=Condition.READY, m=Condition.FAILED)}
    for failures, want in [(0, Action.LOAD), (MAX_LOAD_ATTEMPTS, Action.BLOCKED)]:
        ledger = LedgerState().with_entry("acct", "m", recorded(acct, "m", failures=failures))
        assert only(make_plan([acct], state, ledger), "m").action is want
    # Same failures, but recorded against another spec: the manifest changed, so retry.
    ledger = LedgerState().with_entry(
        "acct", "m", recorded(acct, "m", url=OTHER_URL, failures=MAX_LOAD_ATTEMPTS)
    )
    assert only(make_plan([acct], state, ledger), "m").action is Action.LOAD


# ---------------------------------------------------------------------------------------------
# ignore, --max-deletes, never-empty
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("prune", ["none", "managed", "all"])
def test_ignored_models_are_dropped_from_the_plan(api: str, prune: str) -> None:
    acct = account(api, [entry(api, KEEP)], prune=prune, ignore=["tmp-*", "scratch"])
    state = live(
        keeper=Condition.READY,
        **{"tmp-1": Condition.READY, "tmp-2": Condition.EVICTED},
        scratch=Condition.FAILED,
        other=Condition.READY,
    )
    ledger = LedgerState().with_entry("acct", "tmp-1", recorded(acct, KEEP))
    plan = make_plan([acct], {"acct": state}, ledger)
    assert [c.model_id for c in plan.accounts[0].changes] == [KEEP, "other"]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("ensure", "condition"),
    [("present", Condition.MISSING), ("present", Condition.READY), ("absent", Condition.READY)],
)
def test_declared_models_matched_by_ignore_are_reported_never_touched(
    api: str, ensure: str, condition: Condition
) -> None:
    # "ignore: model ids never touched" (design.md §2) wins over a declaration, which is not
    # dropped silently either: the contradiction is reported.
    acct = account(
        api,
        [entry(api, KEEP), entry(api, "tmp-1", ensure=ensure, url=OTHER_URL)],
        prune="all",
        ignore=["tmp-*"],
    )
    ledger = LedgerState().with_entry("acct", "tmp-1", recorded(acct, KEEP))
    state = live(keeper=Condition.READY, **{"tmp-1": condition})
    change = only(make_plan([acct], {"acct": state}, ledger), "tmp-1")
    assert change.action is Action.BLOCKED
    assert "ignore" in change.reason


def _prunable(count: int, name: str = "acct") -> tuple[LoadedAccount, LiveState]:
    acct = account("enterprise", [entry("enterprise", KEEP)], name=name, prune="all")
    models = {f"old-{i}": Condition.READY for i in range(count)}
    return acct, live(name, keeper=Condition.READY, **models)


def test_max_deletes_blocks_the_whole_run() -> None:
    acct, state = _prunable(6)
    plan = make_plan([acct], {"acct": state}, LedgerState(), max_deletes=5)
    assert plan.counts()["delete"] == 6
    assert plan.blockers and "--max-deletes" in plan.blockers[0]
    assert plan.is_blocked()
    assert plan.accounts[0].blockers == ()


def test_max_deletes_is_inclusive_and_counts_across_accounts() -> None:
    (a, live_a), (b, live_b) = _prunable(3, "a"), _prunable(3, "b")
    states = {"a": live_a, "b": live_b}
    assert not make_plan([a, b], states, LedgerState(), max_deletes=6).is_blocked()
    assert make_plan([a, b], states, LedgerState(), max_deletes=5).is_blocked()
    assert make_plan([a], states, LedgerState(), max_deletes=3).blockers == ()


def test_max_deletes_defaults_to_five() -> None:
    acct, state = _prunable(5)
    assert not make_plan([acct], {"acct": state}, LedgerState()).is_blocked()
    acct, state = _prunable(6)
    assert make_plan([acct], {"acct": state}, LedgerState()).is_blocked()


def test_never_empty_guard_blocks_an_account_that_would_be_emptied() -> None:
    acct = account("enterprise", [entry("enterprise", "gone", ensure="absent")], prune="all")
    state = live(gone=Condition.READY, stray=Condition.EVICTED)
    plan = make_plan([acct], {"acct": state}, LedgerState(), max_deletes=100)
    assert plan.counts()["delete"] == 2
    assert plan.blockers == ()
    (account_plan,) = plan.accounts
    assert account_plan.blockers and "deletes all 2 models" in account_plan.blockers[0]
    assert plan.is_blocked()


@pytest.mark.parametrize(
    ("declared", "conditions", "blocked"),
    [
        pytest.param([], {}, False, id="empty-account-stays-empty"),
        pytest.param(["new"], {"old": Condition.READY}, False, id="one-load-replaces-delete"),
        pytest.param(
            [KEEP], {KEEP: Condition.READY, "old": Condition.READY}, False, id="one-model-kept"
        ),
        pytest.param([], {"old": Condition.READY}, True, id="last-model-deleted"),
        pytest.param(
            ["bad"],
            {"bad": Condition.FAILED, "old": Condition.READY},
            False,
            id="failed-model-retried-stays",
        ),
    ],
)
def test_never_empty_guard_cases(
    declared: list[str], conditions: dict[str, Condition], blocked: bool
) -> None:
    acct = account("enterprise", [entry("enterprise", m) for m in declared], prune="all")
    plan = make_plan([acct], {"acct": live(**conditions)}, LedgerState(), max_deletes=100)
    assert bool(plan.accounts[0].blockers) is blocked
    assert plan.is_blocked() is blocked


def test_community_accounts_are_never_emptied_because_they_cannot_delete() -> None:
    acct = account("community", [], prune="all")
    plan = make_plan([acct], {"acct": live(old=Condition.READY)}, LedgerState())
    assert only(plan, "old").action is Action.BLOCKED
    assert not plan.is_blocked()


# ---------------------------------------------------------------------------------------------
# Ordering, counts, digest, serialisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_changes_are_sorted_by_model_id(api: str) -> None:
    acct = account(api, [entry(api, "c"), entry(api, "a", ensure="absent"), entry(api, "e")])
    state = live(d=Condition.READY, b=Condition.READY, a=Condition.READY, c=Condition.READY)
    plan = make_plan([acct], {"acct": state}, LedgerState())
    assert [c.model_id for c in plan.accounts[0].changes] == ["a", "b", "c", "d", "e"]


def test_accounts_are_sorted_by_name_and_unlisted_accounts_skipped() -> None:
    names = ["zeta", "alpha", "mid", "offline"]
    accounts = [
        account(APIS[i % 2], [entry(APIS[i % 2], "m")], name=n) for i, n in enumerate(names)
    ]
    states = {n: live(n) for n in names if n != "offline"}
    plan = make_plan(accounts, states, LedgerState())
    assert [a.account for a in plan.accounts] == ["alpha", "mid", "zeta"]
    assert [a.api for a in plan.accounts] == ["enterprise", "community", "community"]


def test_account_plan_records_the_live_fingerprint_and_origins() -> None:
    acct = account("enterprise", [entry("enterprise", "a"), entry("enterprise", "b")])
    state = live(a=Condition.READY, z=Condition.READY)
    account_plan = plan_account(acct, state, LedgerState())
    assert isinstance(account_plan, AccountPlan)
    assert account_plan.live_fingerprint == state.fingerprint
    origins = {c.model_id: c.origin for c in account_plan.changes}
    assert origins == {"a": "m.yaml:10", "b": "m.yaml:11", "z": "m.yaml:1"}


def _mixed_plan(url: str = URL) -> Plan:
    ent = account(
        "enterprise",
        [
            entry("enterprise", "load", url=url),
            entry("enterprise", "swap", url=url),
            entry("enterprise", "gone", ensure="absent"),
            entry("enterprise", "fine"),
        ],
        name="ent",
    )
    com = account(
        "community",
        [
            entry("community", "back"),
            entry("community", "wait"),
            entry("community", "gone", ensure="absent"),
        ],
        name="com",
    )
    ledger = (
        LedgerState()
        .with_entry("ent", "swap", recorded(ent, "swap", url=OTHER_URL))
        .with_entry("ent", "fine", recorded(ent, "fine"))
        .with_entry("com", "back", recorded(com, "back"))
    )
    states = {
        "ent": live("ent", swap=Condition.READY, gone=Condition.READY, fine=Condition.READY),
        "com": live("com", back=Condition.EVICTED, wait=Condition.LOADING, gone=Condition.READY),
    }
    return make_plan([ent, com], states, ledger)


def test_counts_cover_every_action() -> None:
    plan = _mixed_plan()
    assert plan.counts() == {
        "load": 1,
        "reload": 1,
        "replace": 1,
        "delete": 1,
        "wait": 1,
        "noop": 1,
        "blocked": 1,
    }
    assert Plan().counts() == dict.fromkeys((a.value for a in Action), 0)
    assert plan.has_changes()


@pytest.mark.parametrize("api", APIS)
def test_has_changes_is_false_with_only_noop_and_blocked(api: str) -> None:
    acct = account(
        api,
        [
            entry(api, "fine"),
            entry(api, "stuck"),
            entry(api, "kept", ensure="absent", protect=True),
        ],
    )
    ledger = (
        LedgerState()
        .with_entry("acct", "fine", recorded(acct, "fine"))
        .with_entry("acct", "stuck", recorded(acct, "stuck", failures=MAX_LOAD_ATTEMPTS))
    )
    state = live(
        fine=Condition.READY, stuck=Condition.FAILED, kept=Condition.READY, loose=Condition.READY
    )
    plan = make_plan([acct], {"acct": state}, ledger)
    assert {c.action for c in plan.accounts[0].changes} == {Action.NOOP, Action.BLOCKED}
    assert not plan.has_changes()
    assert plan.accounts[0].actions() == ()


def test_digest_is_stable_and_tracks_changes() -> None:
    first, again, other = _mixed_plan(), _mixed_plan(), _mixed_plan(url="org/else")
    assert first == again
    assert first.digest() == again.digest()
    assert first.digest().startswith("sha256:")
    assert first.digest() != other.digest()
    # ledger_available is not part of what the plan would do.
    assert first.model_copy(update={"ledger_available": False}).digest() == first.digest()


def test_plan_json_round_trip() -> None:
    plan = _mixed_plan()
    blocked = plan.model_copy(update={"blockers": ("too many deletes",)})
    for candidate in (plan, blocked, Plan()):
        assert Plan.model_validate_json(candidate.model_dump_json()) == candidate
    assert plan.format_version == PLAN_FORMAT_VERSION


def test_plan_is_immutable() -> None:
    plan = _mixed_plan()
    with pytest.raises(ValueError, match="frozen"):
        plan.blockers = ("x",)  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Field-level differences
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_load_fields_are_all_new(api: str) -> None:
    acct = account(api, [entry(api, "m")])
    change = only(make_plan([acct], {"acct": live()}, LedgerState()), "m")
    assert change.action is Action.LOAD
    assert change.spec == dict(acct.desired()[0].spec)
    assert change.spec_hash == acct.desired()[0].spec_hash
    assert change.fields == tuple(
        FieldChange(path=name, old=None, new=value) for name, value in sorted(change.spec.items())
    )
    assert "url" in change.spec and "model_id" not in change.spec


@pytest.mark.parametrize("api", APIS)
def test_replace_fields_name_only_the_changed_field(api: str) -> None:
    acct = account(api, [entry(api, KEEP), entry(api, "m", url=OTHER_URL)])
    ledger = LedgerState().with_entry("acct", "m", recorded(acct, "m", url=URL))
    state = live(keeper=Condition.READY, m=Condition.READY)
    change = only(make_plan([acct], {"acct": state}, ledger), "m")
    assert change.action is Action.REPLACE
    assert change.fields == (FieldChange(path="url", old=URL, new=OTHER_URL),)


@pytest.mark.parametrize(
    ("condition", "ledger_kind", "action"),
    [
        (Condition.EVICTED, "same", Action.RELOAD),
        (Condition.LOADING, "same", Action.WAIT),
        (Condition.READY, "same", Action.NOOP),
        (Condition.FAILED, "same", Action.LOAD),
    ],
)
def test_other_actions_carry_no_field_changes_for_an_unchanged_spec(
    condition: Condition, ledger_kind: str, action: Action
) -> None:
    acct, state, ledger = _scenario("enterprise", "present", condition, ledger_kind, "none")
    change = only(make_plan([acct], {"acct": state}, ledger), "m")
    assert change.action is action
    assert change.fields == ()
    assert change.spec  # still carries what a reload/wait would converge to


# ---------------------------------------------------------------------------------------------
# Action
# ---------------------------------------------------------------------------------------------


def test_action_marks_and_kinds() -> None:
    assert {a: a.symbol for a in Action} == {
        Action.LOAD: "+",
        Action.RELOAD: "↻",
        Action.REPLACE: "~",
        Action.DELETE: "-",
        Action.WAIT: "…",
        Action.NOOP: " ",
        Action.BLOCKED: "!",
    }
    assert {a for a in Action if a.is_change} == set(Action) - {Action.NOOP, Action.BLOCKED}


@pytest.mark.parametrize(
    ("api", "expected"), [("enterprise", Action.WAIT), ("community", Action.LOAD)]
)
def test_a_sent_enterprise_load_not_listed_yet_is_waited_for(api: str, expected: Action) -> None:
    # An enterprise server lists a model only once loaded; loading it again would restart it.
    acct = account(api, [entry(api, KEEP), entry(api, "m")])
    sent = recorded(acct, "m").model_copy(update={"outcome": "applied"})
    ledger = LedgerState().with_entry("acct", KEEP, recorded(acct, KEEP))
    ledger = ledger.with_entry("acct", "m", sent)

    plan = make_plan([acct], {"acct": live(**{KEEP: Condition.READY})}, ledger)

    assert only(plan, "m").action is expected


def test_a_sent_enterprise_load_with_another_spec_is_loaded_again() -> None:
    acct = account("enterprise", [entry("enterprise", KEEP), entry("enterprise", "m")])
    sent = recorded(acct, "m", url=OTHER_URL).model_copy(update={"outcome": "applied"})
    ledger = LedgerState().with_entry("acct", "m", sent)

    plan = make_plan([acct], {"acct": live(**{KEEP: Condition.READY})}, ledger)

    assert only(plan, "m").action is Action.LOAD
