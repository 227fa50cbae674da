"""End to end, what may be deleted and when a run must not act at all: ``ensure: absent``,
the prune policies, ``ignore``, ``--max-deletes``, the never-empty guard, stale saved plans."""

from __future__ import annotations

import os

from reconciler.ledger.folder import FolderLedger

from ..e2e.e2e_support import (
    World,
    absent,
    account_report,
    actions,
    changes,
    community_model,
    enterprise_model,
    items,
)

READY = "model_ready"
DELETE = "v1/enterprise/delete_model"


# -- ensure: absent ----------------------------------------------------------------------------


def test_absent_on_enterprise_is_deleted(world: World) -> None:
    world.seed("farm", "retired")
    world.manifest("farm", [enterprise_model("current"), absent("retired")])

    planned = world.plan("--detailed-exitcode", "-o", "json")
    assert planned.code == 2, planned.text
    assert actions(planned.json(), "farm") == {"current": "load", "retired": "delete"}
    assert "- delete" in world.plan().out

    applied = world.apply("-o", "json")
    assert applied.code == 0, applied.text
    assert items(applied.json(), "farm")["retired"]["outcome"] == "done"

    assert world.statuses("farm") == {"current": READY}
    assert world.count(DELETE, "farm") == 1
    assert world.plan("--detailed-exitcode").code == 0


def test_absent_on_community_is_reported_impossible(world: World) -> None:
    world.seed("studio", "retired")
    world.manifest("studio", [community_model("current"), absent("retired")])

    planned = world.plan("--detailed-exitcode", "-o", "json")
    assert planned.code == 2, planned.text  # the load of "current"
    retired = changes(planned.json(), "studio")["retired"]
    assert retired["action"] == "blocked"
    assert "not possible through the community API" in retired["reason"]
    assert "not possible through the community API" in world.plan().out

    applied = world.apply("-o", "json")
    assert applied.code == 0, applied.text
    item = items(applied.json(), "studio")["retired"]
    assert item["outcome"] == "blocked"
    assert "not possible through the community API" in item["message"]

    assert world.statuses("studio") == {"current": READY, "retired": READY}
    assert world.mutations() == {"v3/load_model": 1}  # no delete of any kind was sent


# -- prune policies and ignore -----------------------------------------------------------------


def test_prune_none_keeps_and_reports_undeclared_models(world: World) -> None:
    world.seed("farm", "hand-made")
    world.manifest("farm", [enterprise_model("declared")], prune="none")

    planned = world.plan("-o", "json")
    hand_made = changes(planned.json(), "farm")["hand-made"]
    assert hand_made["action"] == "noop"
    assert hand_made["condition"] == "unmanaged"
    assert "prune: none" in hand_made["reason"]

    assert world.apply().code == 0
    assert world.plan("--detailed-exitcode").code == 0  # reported only, not an action
    assert world.statuses("farm") == {"hand-made": READY, "declared": READY}
    assert world.count(DELETE) == 0


def test_prune_managed_deletes_only_what_this_tool_loaded(world: World) -> None:
    world.manifest("farm", [enterprise_model("keep"), enterprise_model("drop")], prune="managed")
    assert world.apply().code == 0
    world.seed("farm", "stranger")  # on the server, never loaded by this tool

    world.manifest("farm", [enterprise_model("keep")], prune="managed")
    planned = world.plan("--detailed-exitcode", "-o", "json")
    assert planned.code == 2, planned.text
    assert actions(planned.json(), "farm") == {"drop": "delete", "keep": "noop", "stranger": "noop"}
    assert changes(planned.json(), "farm")["drop"]["managed"] is True
    assert changes(planned.json(), "farm")["stranger"]["managed"] is False

    applied = world.apply()
    assert applied.code == 0, applied.text
    assert world.statuses("farm") == {"keep": READY, "stranger": READY}
    assert world.count(DELETE) == 1
    assert world.plan("--detailed-exitcode").code == 0


def test_prune_all_deletes_every_undeclared_model_but_ignored_ones(world: World) -> None:
    for model_id in ("stranger-1", "stranger-2", "scratch-experiment"):
        world.seed("farm", model_id)
    world.manifest("farm", [enterprise_model("declared")], prune="all", ignore=["scratch-*"])

    planned = world.plan("--detailed-exitcode", "-o", "json")
    assert planned.code == 2, planned.text
    assert actions(planned.json(), "farm") == {
        "declared": "load",
        "stranger-1": "delete",
        "stranger-2": "delete",
    }  # the ignored model is not even reported

    applied = world.apply()
    assert applied.code == 0, applied.text
    assert world.statuses("farm") == {"scratch-experiment": READY, "declared": READY}
    assert world.count(DELETE) == 2
    assert world.plan("--detailed-exitcode").code == 0


def test_ignore_globs_are_untouched_under_prune_managed(world: World) -> None:
    world.manifest(
        "farm",
        [enterprise_model("keep"), enterprise_model("scratch-a")],
        prune="managed",
    )
    assert world.apply().code == 0
    # scratch-a is now managed; ignoring it must still keep it out of every decision
    world.manifest("farm", [enterprise_model("keep")], prune="managed", ignore=["scratch-*"])

    planned = world.plan("--detailed-exitcode", "-o", "json")
    assert planned.code == 0, planned.text
    assert actions(planned.json(), "farm") == {"keep": "noop"}
    assert world.apply().code == 0
    assert world.statuses("farm") == {"keep": READY, "scratch-a": READY}
    assert world.count(DELETE) == 0


# -- guards that stop a run before anything is sent ----------------------------------------------


def test_max_deletes_stops_the_run_before_any_request(world: World) -> None:
    for model_id in ("old-1", "old-2"):
        world.seed("farm", model_id)
    world.manifest("farm", [enterprise_model("new")], prune="all")
    world.manifest("studio", [community_model("elsewhere")])  # another account with work to do

    planned = world.plan("--max-deletes", "1", "-o", "json")
    assert planned.code == 1, planned.text
    assert any("--max-deletes 1" in b for b in planned.json()["blockers"])

    applied = world.apply("--max-deletes", "1")
    assert applied.code == 1, applied.text
    assert "Apply refused (apply-failed)" in applied.out
    assert "refused before sending anything" in applied.out
    assert "--max-deletes 1" in applied.out

    assert world.mutations() == {}
    assert world.statuses("farm") == {"old-1": READY, "old-2": READY}
    assert world.statuses("studio") == {}

    allowed = world.apply("--max-deletes", "2")
    assert allowed.code == 0, allowed.text
    assert world.statuses("farm") == {"new": READY}


def test_never_empty_guard_stops_the_run_before_any_request(world: World) -> None:
    for model_id in ("only-1", "only-2"):
        world.seed("farm", model_id)
    world.manifest("farm", [], prune="all")
    world.manifest("studio", [community_model("elsewhere")])

    planned = world.plan("-o", "json")
    assert planned.code == 1, planned.text
    farm = next(a for a in planned.json()["accounts"] if a["account"] == "farm")
    assert any("deletes all 2 models" in b for b in farm["blockers"])

    applied = world.apply("-o", "json")
    assert applied.code == 1, applied.text
    report = applied.json()
    assert report["ok"] is False
    assert report["failure_reason"] == "apply-failed"
    assert "refused before sending anything" in report["refused"]
    assert "farm: the plan deletes all 2 models" in report["refused"]

    assert world.mutations() == {}
    assert world.statuses("farm") == {"only-1": READY, "only-2": READY}
    assert world.statuses("studio") == {}


# -- saved plans -----------------------------------------------------------------------------


def test_stale_saved_plan_is_refused_and_a_fresh_one_applies(world: World) -> None:
    world.manifest("studio", [community_model("wanted")])
    world.manifest("farm", [enterprise_model("also-wanted")])
    saved = world.root / "plan.json"

    assert world.plan("--out", str(saved), "--detailed-exitcode").code == 2
    world.seed("studio", "loaded-by-hand")  # the live state moves under the saved plan

    refused = world.apply(target=[str(saved)])
    assert refused.code == 1, refused.text
    assert "Apply refused (plan-changed)" in refused.out
    assert "live state of studio changed since the plan was made" in refused.out
    as_json = world.apply("-o", "json", target=[str(saved)])
    assert as_json.code == 1, as_json.text
    assert as_json.json()["failure_reason"] == "plan-changed"
    assert world.mutations() == {}
    assert world.statuses("farm") == {}

    fresh = world.root / "fresh-plan.json"
    assert world.plan("--out", str(fresh)).code == 0
    applied = world.apply("-o", "json", target=[str(fresh)])
    assert applied.code == 0, applied.text
    assert account_report(applied.json(), "studio")["converged"] is True
    assert world.statuses("studio") == {"wanted": READY, "loaded-by-hand": READY}
    assert world.statuses("farm") == {"also-wanted": READY}
    assert world.plan("--detailed-exitcode").code == 0


# -- the ledger's lock ---------------------------------------------------------------------------


def test_a_held_ledger_lock_refuses_apply_before_any_request(world: World) -> None:
    world.manifest("studio", [community_model("wanted")])

    with FolderLedger(world.ledger).session():  # another run on this machine holds it
        refused = world.apply("-o", "json")

    assert refused.code == 1, refused.text
    report = refused.json()
    assert report["failure_reason"] == "locked"
    assert "in use by another reconciler run" in report["refused"]
    assert f"pid {os.getpid()}" in report["refused"]  # says who holds it, to check on
    assert "delete" not in report["refused"].replace("nothing to delete", "")
    assert world.mutations() == {}
    assert world.apply().code == 0  # once released, the next run goes ahead
