"""End to end, the ledger where CI keeps it: a git branch of the manifests' repository, with a
local bare repository as ``origin``; and runs killed at random points.

- a spec change merged in git is applied from a fresh clone (the ledger is not lost with the
  checkout), instead of adopted silently;
- two applies racing for one account: one wins, the other ends ``locked``, no model is loaded
  twice; racing for different accounts: both land;
- a run killed with SIGKILL at random points: the next apply converges with no duplicate load.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .e2e_support import (
    APPLY_TIMEOUT,
    CLIENT_SPAM_WINDOW,
    LOAD_ENDPOINTS,
    POLL_INTERVAL,
    World,
    actions,
    community_model,
    enterprise_model,
)

READY = "model_ready"
BRANCH = "reconciler-ledger"


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its stdout. Fails the test on error."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, env=_git_env()
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def _git_env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }


@pytest.fixture
def origin(world: World) -> Path:
    """A bare repository standing in for GitHub, holding the world's manifests on main."""
    bare = world.root / "origin.git"
    bare.mkdir()
    git(bare, "init", "--quiet", "--bare", "--initial-branch=main")
    seed = world.root / "seed"
    git(world.root, "clone", "--quiet", str(bare), str(seed))
    (seed / "README").write_text("manifests repository\n", encoding="utf-8")
    git(seed, "add", "README")
    git(seed, "commit", "--quiet", "-m", "start")
    git(seed, "push", "--quiet", "origin", "HEAD:main")
    return bare


def fresh_clone(world: World, origin: Path, name: str) -> Path:
    """A new checkout of ``origin``, as a CI run starts from."""
    clone = world.root / name
    git(world.root, "clone", "--quiet", str(origin), str(clone))
    return clone


def commit_manifests(world: World, clone: Path, message: str) -> None:
    """Copy the world's manifests into ``clone``, commit and push them to main."""
    target = clone / "manifests"
    target.mkdir(exist_ok=True)
    for path in world.manifests.iterdir():
        (target / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    git(clone, "add", "manifests")
    git(clone, "commit", "--quiet", "-m", message)
    git(clone, "push", "--quiet", "origin", "HEAD:main")


def branch_files(origin: Path) -> dict[str, dict[str, object]]:
    """The ledger branch's account files on ``origin``."""
    names = git(origin, "ls-tree", "--name-only", BRANCH).splitlines()
    return {name: json.loads(git(origin, "show", f"{BRANCH}:{name}")) for name in names}


def apply_args(clone: Path, *extra: str) -> list[str]:
    """``apply`` of the clone's manifests with the git-branch ledger and a fast poll."""
    return [
        "apply",
        str(clone / "manifests"),
        "--ledger",
        "git:",
        "--poll-interval",
        str(POLL_INTERVAL),
        "--timeout",
        str(APPLY_TIMEOUT),
        *extra,
    ]


def git_apply(world: World, clone: Path, *extra: str) -> tuple[int, str, str]:
    """:func:`apply_args`, in-process."""
    result = world.cli(*apply_args(clone, *extra))
    return result.code, result.out, result.err


def loads(world: World, account: str) -> dict[str, int]:
    """How many loads each model of ``account`` received."""
    return {model_id: model["loads"] for model_id, model in world.models(account).items()}


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


def process_args(world: World) -> list[str]:
    """``python -m reconciler`` with the emulator's URL and the fast spam window."""
    return [
        sys.executable,
        "-m",
        "reconciler",
        "--api-base",
        world.emulator.base_url,
        "--spam-window",
        str(CLIENT_SPAM_WINDOW),
    ]


def _apply_process(world: World, clone: Path, *extra: str) -> subprocess.Popen[str]:
    """``python -m reconciler apply`` of the clone with the git ledger, in its own process."""
    return subprocess.Popen(
        [
            *process_args(world),
            *apply_args(clone, "-o", "json", *extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_git_env(),
    )


def test_two_applies_racing_for_one_account_one_wins_the_other_is_locked(
    world: World, origin: Path
) -> None:
    world.manifest("farm", [enterprise_model(f"m{n}") for n in range(4)])
    commit_manifests(world, fresh_clone(world, origin, "dev"), "declare farm")
    clones = [fresh_clone(world, origin, f"ci-{n}") for n in range(2)]

    processes = [_apply_process(world, clone) for clone in clones]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]

    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    loser = next(json.loads(out) for code, out, _ in results if code == 1)
    assert loser["failure_reason"] == "locked"
    assert loads(world, "farm") == {f"m{n}": 1 for n in range(4)}  # nothing loaded twice
    assert world.statuses("farm") == {f"m{n}": READY for n in range(4)}
    assert branch_files(origin)["farm.json"].get("claim") is None


def test_two_applies_for_different_accounts_both_land(world: World, origin: Path) -> None:
    world.manifest("studio", [community_model("analog")])
    world.manifest("farm", [enterprise_model("canny")])
    commit_manifests(world, fresh_clone(world, origin, "dev"), "declare both")
    clones = [fresh_clone(world, origin, f"ci-{n}") for n in range(2)]

    processes = [
        _apply_process(world, clones[0], "--account", "studio"),
        _apply_process(world, clones[1], "--account", "farm"),
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]

    assert [code for code, _, _ in results] == [0, 0], results
    files = branch_files(origin)
    assert sorted(files) == ["farm.json", "studio.json"]
    assert all(document.get("claim") is None for document in files.values())
    assert loads(world, "studio") == {"analog": 1}
    assert loads(world, "farm") == {"canny": 1}


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


# -- runs killed at random points ----------------------------------------------------------------


def _kill_at_random(world: World, seed: int, ledger: Path) -> None:
    """Start an apply in its own process and SIGKILL it after a random delay."""
    delay = random.Random(seed).uniform(0.2, 2.0)
    process = subprocess.Popen(
        [
            *process_args(world),
            "apply",
            str(world.manifests),
            "--ledger",
            str(ledger),
            "--poll-interval",
            str(POLL_INTERVAL),
            "--load-grace",
            "3",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_run_killed_at_random_leaves_no_duplicate_load(world: World, seed: int) -> None:
    """After a SIGKILL anywhere, the next apply converges and no model is loaded twice: a load
    that may be in flight is re-observed, never sent again while the listing cannot rule it
    out (enterprise: not before the load grace has passed)."""
    world.manifest("studio", [community_model(f"c{n}") for n in range(6)])
    world.manifest("farm", [enterprise_model(f"e{n}") for n in range(6)])
    ledger = world.root / "ledger"

    _kill_at_random(world, seed, ledger)
    result = world.apply("--load-grace", "3", "--timeout", "40")

    assert result.code == 0, result.text
    assert world.statuses("studio") == {f"c{n}": READY for n in range(6)}
    assert world.statuses("farm") == {f"e{n}": READY for n in range(6)}
    assert loads(world, "studio") == {f"c{n}": 1 for n in range(6)}
    assert loads(world, "farm") == {f"e{n}": 1 for n in range(6)}
    sent = sum(world.count(endpoint) for endpoint in LOAD_ENDPOINTS)
    assert sent == 12, world.requests()
    assert world.plan("--detailed-exitcode").code == 0
    ledger_files = sorted(p.name for p in ledger.iterdir())
    assert ledger_files == ["farm.json", "studio.json"]  # journal folded in, no lock left


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
