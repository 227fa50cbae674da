"""The reviewed intent (``plan_hash``) and the account shards: pure functions, pinned."""

from __future__ import annotations

import pytest

from reconciler.core.intent import Shard, parse_shard, plan_hash, reviewed_intent, shard_of
from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan


def model(model_id: str, action: Action, spec_hash: str = "sha256:aa") -> ModelChange:
    return ModelChange(
        model_id=model_id,
        action=action,
        reason="why",
        condition=Condition.READY,
        declared=True,
        managed=True,
        spec_hash=spec_hash,
    )


def plan_of(*changes: ModelChange, fingerprint: str = "sha256:live") -> Plan:
    return Plan(
        accounts=(
            AccountPlan(
                account="studio", api="community", live_fingerprint=fingerprint, changes=changes
            ),
        )
    )


def test_intent_keeps_load_replace_delete_only() -> None:
    plan = plan_of(
        model("a", Action.LOAD),
        model("b", Action.RELOAD),
        model("c", Action.REPLACE, "sha256:cc"),
        model("d", Action.DELETE, ""),
        model("e", Action.WAIT),
        model("f", Action.NOOP),
        model("g", Action.BLOCKED),
    )
    assert reviewed_intent(plan) == [
        ("studio", "a", "load", "sha256:aa"),
        ("studio", "c", "replace", "sha256:cc"),
        ("studio", "d", "delete", ""),
    ]


def test_repairs_and_live_state_do_not_change_the_hash() -> None:
    reviewed = plan_of(model("a", Action.LOAD), model("b", Action.NOOP))
    merged = plan_of(model("a", Action.LOAD), model("b", Action.RELOAD), fingerprint="sha256:moved")
    assert plan_hash(reviewed) == plan_hash(merged)


@pytest.mark.parametrize(
    "changed",
    [
        plan_of(model("a", Action.LOAD, "sha256:other")),  # a new url
        plan_of(model("a", Action.REPLACE)),  # another action
        plan_of(model("a", Action.LOAD), model("z", Action.DELETE)),  # one more model
        plan_of(),  # nothing left to do
    ],
)
def test_intent_changes_change_the_hash(changed: Plan) -> None:
    assert plan_hash(plan_of(model("a", Action.LOAD))) != plan_hash(changed)


def test_hash_is_pinned() -> None:
    # sha256 of the JSON of the sorted intent: stable across runs, machines and versions.
    assert plan_hash(plan_of()) == (
        "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
    )


@pytest.mark.parametrize("count", range(1, 17))
def test_every_account_is_in_exactly_one_shard(count: int) -> None:
    names = [f"account-{i}" for i in range(300)] + ["studio-prod", "render-farm", "ünïcode"]
    for name in names:
        holders = [i for i in range(1, count + 1) if Shard(i, count).holds(name)]
        assert holders == [shard_of(name, count)]
    if count > 1:  # and the shards are not lopsided
        sizes = [sum(Shard(i, count).holds(n) for n in names) for i in range(1, count + 1)]
        assert min(sizes) > 0


def test_shards_are_pinned() -> None:
    # Known values: a change here moves accounts between jobs of every user's matrix.
    # shard_of = int.from_bytes(sha256(name)[:8], "big") % N + 1
    assert [shard_of(name, 4) for name in ("studio-prod", "studio-staging", "render-farm")] == [
        2,
        4,
        2,
    ]
    assert shard_of("anything", 1) == 1


@pytest.mark.parametrize("text", ["", "1", "0/3", "4/3", "1/0", "a/b", "-1/2"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


def test_shard_parses() -> None:
    assert parse_shard(" 2 / 4 ") == Shard(2, 4)
