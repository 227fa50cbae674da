"""End to end, the main job: fresh accounts converge, eviction is repaired, a changed spec is
replaced, the queue limit is respected, and ``status`` shows what is there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..e2e.e2e_support import (
    EIGHT_DAYS,
    World,
    account_report,
    actions,
    changes,
    community_model,
    enterprise_model,
    items,
)

READY = "model_ready"
ModelEntry = Callable[..., dict[str, Any]]


def declare_both(world: World) -> None:
    """Two community models on ``studio`` and two enterprise models on ``farm``."""
    world.manifest("studio", [community_model("analog"), community_model("inpaint")])
    world.manifest("farm", [enterprise_model("canny"), enterprise_model("sdxl")])


def test_fresh_accounts_plan_apply_converge(world: World) -> None:
    declare_both(world)

    before = world.plan("--detailed-exitcode", "-o", "json")
    assert before.code == 2, before.text
    assert actions(before.json(), "studio") == {"analog": "load", "inpaint": "load"}
    assert actions(before.json(), "farm") == {"canny": "load", "sdxl": "load"}
    assert world.mutations() == {}  # plan sends nothing that changes an account

    applied = world.apply()
    assert applied.code == 0, applied.text
    assert "Apply complete: 2 accounts converged." in applied.out

    after = world.plan("--detailed-exitcode")
    assert after.code == 0, after.text
    assert "No changes." in after.out

    for account, ids in (("studio", {"analog", "inpaint"}), ("farm", {"canny", "sdxl"})):
        models = world.models(account)
        assert {m: r["status"] for m, r in models.items()} == dict.fromkeys(ids, READY)
        assert all(r["loads"] == 1 for r in models.values())
        assert {r["spec"]["url"] for r in models.values()} == {f"org/{m}" for m in ids}
    assert world.mutations() == {"v3/load_model": 2, "v1/enterprise/load_model": 2}


def test_eviction_after_eight_days_is_reloaded(world: World) -> None:
    declare_both(world)
    assert world.apply().code == 0

    world.advance(EIGHT_DAYS)
    assert world.statuses("studio") == {"analog": "evicted", "inpaint": "evicted"}
    assert world.statuses("farm") == {"canny": READY, "sdxl": READY}  # servers do not evict

    drift = world.plan("--detailed-exitcode", "-o", "json")
    assert drift.code == 2, drift.text
    assert actions(drift.json(), "studio") == {"analog": "reload", "inpaint": "reload"}
    assert actions(drift.json(), "farm") == {"canny": "noop", "sdxl": "noop"}
    assert "↻ reload" in world.plan().out

    repaired = world.apply()
    assert repaired.code == 0, repaired.text
    assert world.plan("--detailed-exitcode").code == 0

    assert world.statuses("studio") == {"analog": READY, "inpaint": READY}
    assert all(r["loads"] == 2 for r in world.models("studio").values())
    assert world.mutations() == {
        "v3/load_model": 2,  # the first apply only: reloads are not loads
        "v4/dreambooth/model_reload": 2,
        "v1/enterprise/load_model": 2,
    }


@pytest.mark.parametrize(
    ("account", "model", "endpoint"),
    [
        ("studio", community_model, "v3/load_model"),
        ("farm", enterprise_model, "v1/enterprise/load_model"),
    ],
)
def test_changed_url_is_replaced(
    world: World, account: str, model: ModelEntry, endpoint: str
) -> None:
    world.manifest(account, [model("keeper"), model("moving", url="org/old-weights")])
    assert world.apply().code == 0
    assert world.ledger.exists()

    world.manifest(account, [model("keeper"), model("moving", url="org/new-weights")])
    planned = world.plan("--detailed-exitcode", "-o", "json")
    assert planned.code == 2, planned.text
    assert actions(planned.json(), account) == {"keeper": "noop", "moving": "replace"}
    fields = changes(planned.json(), account)["moving"]["fields"]
    assert {"path": "url", "old": "org/old-weights", "new": "org/new-weights"} in fields
    text = world.plan().out
    assert "~ replace" in text
    assert "org/old-weights" in text
    assert "org/new-weights" in text

    applied = world.apply()
    assert applied.code == 0, applied.text
    assert world.plan("--detailed-exitcode").code == 0

    models = world.models(account)
    assert models["moving"]["spec"]["url"] == "org/new-weights"
    assert models["moving"]["status"] == READY
    assert models["moving"]["loads"] == 2
    assert models["keeper"]["loads"] == 1
    assert world.count(endpoint) == 3


def test_protected_model_with_changed_url_is_blocked_not_replaced(world: World) -> None:
    world.manifest("studio", [community_model("precious", url="org/v1", protect=True)])
    assert world.apply().code == 0

    world.manifest("studio", [community_model("precious", url="org/v2", protect=True)])
    planned = world.plan("-o", "json")
    change = changes(planned.json(), "studio")["precious"]
    assert change["action"] == "blocked"
    assert "protected" in change["reason"]
    assert world.plan("--detailed-exitcode").code == 0  # reported only: nothing apply may do

    applied = world.apply("-o", "json")
    assert applied.code == 0, applied.text
    assert items(applied.json(), "studio")["precious"]["outcome"] == "blocked"

    record = world.models("studio")["precious"]
    assert record["spec"]["url"] == "org/v1"
    assert record["loads"] == 1
    assert world.mutations() == {"v3/load_model": 1}  # the first apply's load, nothing since

    # Evicted, it is reloaded (service comes back) with what was loaded, still not replaced.
    world.advance(EIGHT_DAYS)
    evicted = world.plan("--detailed-exitcode", "-o", "json")
    assert evicted.code == 2, evicted.text
    assert actions(evicted.json(), "studio") == {"precious": "reload"}
    assert world.apply().code == 0
    record = world.models("studio")["precious"]
    assert (record["status"], record["spec"]["url"], record["loads"]) == (READY, "org/v1", 2)
    assert world.mutations() == {"v3/load_model": 1, "v4/dreambooth/model_reload": 1}
    assert actions(world.plan("-o", "json").json(), "studio") == {"precious": "blocked"}


@pytest.mark.parametrize(
    ("account", "model", "endpoint"),
    [
        ("narrow", community_model, "v3/load_model"),
        ("narrow-farm", enterprise_model, "v1/enterprise/load_model"),
    ],
)
def test_queue_limit_is_never_exceeded(
    world: World, account: str, model: ModelEntry, endpoint: str
) -> None:
    """Five loads on an account that takes two at a time: no load is refused with a 429.

    The emulator counts every request that reaches an endpoint, and a load refused by the
    queue limit starts nothing: so requests == loads started == 5 proves none was refused.
    """
    ids = [f"m{n}" for n in range(5)]
    world.manifest(account, [model(i) for i in ids])

    applied = world.apply("-o", "json")
    assert applied.code == 0, applied.text
    report = applied.json()
    assert account_report(report, account)["converged"] is True
    assert {i: item["outcome"] for i, item in items(report, account).items()} == dict.fromkeys(
        ids, "done"
    )

    models = world.models(account)
    assert {i: r["status"] for i, r in models.items()} == dict.fromkeys(ids, READY)
    assert all(r["loads"] == 1 for r in models.values())
    assert world.count(endpoint, account) == 5


def test_no_wait_then_apply_waits_for_the_running_loads(world: World) -> None:
    """``--no-wait`` sends and returns; the next plan shows ``wait``; apply waits, sends nothing."""
    world.control("settings", {"load_seconds": 180})  # 3 real seconds: still running later
    world.manifest("studio", [community_model("slow")])
    world.manifest("farm", [enterprise_model("other")])

    sent = world.apply("--no-wait", "--account", "studio", "-o", "json")
    assert sent.code == 0, sent.text
    assert [a["account"] for a in sent.json()["accounts"]] == ["studio"]
    assert items(sent.json(), "studio")["slow"]["outcome"] == "sent"
    assert world.statuses("studio") == {"slow": "model_loading"}
    assert world.statuses("farm") == {}  # --account narrowed the run

    planned = world.plan("--account", "studio", "--detailed-exitcode", "-o", "json")
    assert planned.code == 2, planned.text
    assert actions(planned.json(), "studio") == {"slow": "wait"}

    waited = world.apply("--account", "studio")
    assert waited.code == 0, waited.text
    record = world.models("studio")["slow"]
    assert (record["status"], record["loads"]) == (READY, 1)
    assert world.mutations() == {"v3/load_model": 1}


def test_queue_limit_counts_loads_started_by_others(world: World) -> None:
    """A load someone else started takes a place in the queue too (community lists it)."""
    world.seed("narrow", "someone-elses", status="model_loading")
    ids = ["m0", "m1", "m2"]
    world.manifest("narrow", [community_model(i) for i in ids])

    applied = world.apply("-o", "json")
    assert applied.code == 0, applied.text
    assert world.statuses("narrow") == dict.fromkeys(["someone-elses", *ids], READY)
    assert world.count("v3/load_model", "narrow") == 3  # none refused by the queue limit


def test_status_shows_declared_and_unmanaged_models(world: World) -> None:
    declare_both(world)
    assert world.apply().code == 0
    world.advance(EIGHT_DAYS)  # the community models are evicted
    world.seed("studio", "hand-made")
    world.seed("farm", "stray")
    world.manifest(
        "studio",
        [community_model("analog"), community_model("inpaint"), community_model("not-yet")],
    )

    text = world.status()
    assert text.code == 0, text.text
    lines = {line.split()[0]: line.split() for line in text.out.splitlines() if line.strip()}
    assert lines["analog"][1:4] == ["evicted", "yes", "yes"]
    assert lines["not-yet"][1:5] == ["missing", "yes", "no", "-"]
    assert lines["hand-made"][1:5] == ["unmanaged", "(ready)", "no", "no"]
    assert lines["canny"][1:4] == ["ready", "yes", "yes"]
    assert lines["stray"][1:5] == ["unmanaged", "(ready)", "no", "no"]
    assert "account studio (community)" in text.out
    assert "account farm (enterprise)" in text.out

    document = world.status("-o", "json").json()
    rows = {
        (account["account"], model["model_id"]): model
        for account in document["accounts"]
        for model in account["models"]
    }
    assert set(rows) == {
        ("studio", "analog"),
        ("studio", "inpaint"),
        ("studio", "not-yet"),
        ("studio", "hand-made"),
        ("farm", "canny"),
        ("farm", "sdxl"),
        ("farm", "stray"),
    }
    assert rows["studio", "inpaint"]["condition"] == "evicted"
    assert rows["studio", "inpaint"]["managed"] is True
    assert rows["studio", "inpaint"]["last_outcome"] == "ready"
    assert rows["studio", "not-yet"]["condition"] == "missing"
    assert rows["studio", "hand-made"]["condition"] == "unmanaged"
    assert rows["studio", "hand-made"]["live_condition"] == "ready"
    assert rows["studio", "hand-made"]["declared"] is False
    assert rows["farm", "sdxl"]["condition"] == "ready"
    assert rows["farm", "stray"]["managed"] is False
    assert world.mutations() == {"v3/load_model": 2, "v1/enterprise/load_model": 2}
