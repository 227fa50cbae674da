"""The ledger where CI keeps it, on virtual time: a git branch of the manifests' repository with
a local bare repository as ``origin`` (git is real), the emulator in-process.

- a spec change merged in git is applied from a fresh clone (the ledger is not lost with the
  checkout), instead of adopted silently;
- a live claim on the branch locks another run out; the claim of a run that died is taken over;
- the default ledger folder is beside the manifests, never among them;
- loads an earlier run sent hold their queue places in the next run.

Races between processes and runs killed at random stay in real time, in
``tests/e2e/test_e2e_ledger.py``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from ..e2e.e2e_support import POLL_INTERVAL, World, actions, community_model, enterprise_model
from ..e2e.test_e2e_ledger import (
    BRANCH,
    READY,
    branch_files,
    commit_manifests,
    fresh_clone,
    git,
    git_apply,
    loads,
    origin,
)

__all__ = ["origin"]  # the fixture, used by name


def test_a_url_change_merged_in_git_is_replaced_from_a_fresh_clone(
    world: World, origin: Path
) -> None:
    world.manifest("studio", [community_model("analog", url="org/v1")])
    first = fresh_clone(world, origin, "ci-1")
    commit_manifests(world, first, "declare analog")
    code, out, err = git_apply(world, first)
    assert code == 0, out + err
    files = branch_files(origin)
    assert list(files) == ["studio.json"]
    assert files["studio.json"].get("claim") is None  # released at the end
    assert files["studio.json"]["models"]["analog"]["spec"]["url"] == "org/v1"  # type: ignore[index]
    assert git(origin, "ls-tree", "--name-only", "main").splitlines() == ["README", "manifests"]

    world.manifest("studio", [community_model("analog", url="org/v2")])
    commit_manifests(world, fresh_clone(world, origin, "dev"), "analog v2")
    second = fresh_clone(world, origin, "ci-2")  # a new CI run: nothing local survives
    planned = world.cli("plan", str(second / "manifests"), "--ledger", "git:", "-o", "json")
    assert actions(planned.json(), "studio") == {"analog": "replace"}
    code, out, err = git_apply(world, second)
    assert code == 0, out + err
    assert world.models("studio")["analog"]["spec"]["url"] == "org/v2"
    assert loads(world, "studio") == {"analog": 2}
    models = branch_files(origin)["studio.json"]["models"]
    assert models["analog"]["spec"]["url"] == "org/v2"  # type: ignore[index]
    log = git(origin, "log", "--format=%s", BRANCH).splitlines()
    assert log[-1].startswith("reconciler: claim studio")
    assert git(origin, "rev-list", "--max-parents=0", "--count", BRANCH) == "1"  # orphan


def _push_claim(world: World, origin: Path, claim: dict[str, object]) -> None:
    """Put a claim of another run on ``studio`` on the ledger branch of ``origin``."""
    document = {"format_version": 2, "account": "studio", "claim": claim, "models": {}}
    other = fresh_clone(world, origin, "other")
    git(other, "checkout", "--quiet", "--orphan", BRANCH)
    git(other, "rm", "-rf", "--quiet", ".")
    (other / "studio.json").write_text(json.dumps(document), encoding="utf-8")
    git(other, "add", "studio.json")
    git(other, "commit", "--quiet", "-m", "claim")
    git(other, "push", "--quiet", "origin", BRANCH)


def test_a_live_claim_on_the_branch_locks_out_another_run(world: World, origin: Path) -> None:
    """A run that finds an account claimed by a run still going sends nothing for it."""
    world.manifest("studio", [community_model("analog")])
    clone = fresh_clone(world, origin, "ci")
    commit_manifests(world, clone, "declare")
    _push_claim(
        world,
        origin,
        {
            "run": "other",
            "host": "elsewhere",
            "pid": 1,
            "at": "2026-01-01T00:00:00Z",
            "expires": "2999-01-01T00:00:00Z",
        },
    )

    code, out, err = git_apply(world, clone, "-o", "json")

    assert code == 1, out + err
    report = json.loads(out)
    assert report["failure_reason"] == "locked"
    assert "held by another reconciler run (run other" in report["refused"]
    assert world.mutations() == {}


def test_the_claim_of_a_run_that_died_is_taken_over_and_said_so(world: World, origin: Path) -> None:
    world.manifest("studio", [community_model("analog")])
    clone = fresh_clone(world, origin, "ci")
    commit_manifests(world, clone, "declare")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)  # a pid on this host that no longer runs
    _push_claim(
        world,
        origin,
        {
            "run": "dead",
            "host": socket.gethostname(),
            "pid": gone.pid,
            "at": "2026-01-01T00:00:00Z",
            "expires": "2999-01-01T00:00:00Z",
        },
    )

    code, out, err = git_apply(world, clone)

    assert code == 0, out + err
    assert "note: " in out and "took over the claim of run dead" in out
    assert loads(world, "studio") == {"analog": 1}
    assert branch_files(origin)["studio.json"].get("claim") is None


def test_the_manifest_folder_gets_no_ledger_file(world: World) -> None:
    """The default ledger lives beside the manifests folder: `git add manifests/` never
    picks it up, and nothing such as a lock is ever left among the manifests."""
    world.manifest("studio", [community_model("analog")])
    before = sorted(p.name for p in world.manifests.iterdir())
    result = world.cli(
        "apply", str(world.manifests), "--poll-interval", str(POLL_INTERVAL), "--timeout", "30"
    )
    assert result.code == 0, result.text
    assert sorted(p.name for p in world.manifests.iterdir()) == before
    folder = world.root / ".reconciler-ledger"
    assert sorted(p.name for p in folder.iterdir()) == ["studio.json"]
    assert yaml.safe_load((folder / "studio.json").read_text())["models"]["analog"]["outcome"] == (
        "ready"
    )


def test_loads_an_earlier_run_sent_count_against_the_queue_limit(world: World) -> None:
    """``apply --no-wait`` then ``apply``: the enterprise server does not list the loads still
    running, but the ledger says they were sent; they hold their queue places, so the next
    run waits for them instead of overshooting the limit and collecting a 429."""
    world.manifest("narrow-farm", [enterprise_model("a"), enterprise_model("b")], queue_limit=2)
    assert world.apply("--no-wait").code == 0
    world.manifest(
        "narrow-farm",
        [enterprise_model(m) for m in ("a", "b", "c", "d")],
        queue_limit=2,
    )

    result = world.apply()

    assert result.code == 0, result.text
    assert world.statuses("narrow-farm") == dict.fromkeys("abcd", READY)
    # each load sent exactly once: none refused by the queue limit and sent again
    assert world.count("v1/enterprise/load_model", "narrow-farm") == 4
