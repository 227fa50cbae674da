"""End to end in real time, the ledger between processes: a git branch of the manifests'
repository, with a local bare repository as ``origin``; and runs killed at random points. (The
tests of one run at a time are on virtual time: ``tests/virtual/test_ledger.py``.) Its git
helpers serve the virtual-time tests too.

- two applies racing for one account: one wins, the other ends ``locked``, no model is loaded
  twice; racing for different accounts: both land;
- a run killed with SIGKILL at random points: the next apply converges with no duplicate load.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.ledger.journal import JournalFile

from .e2e_support import (
    APPLY_TIMEOUT,
    CLIENT_SPAM_WINDOW,
    LOAD_ENDPOINTS,
    POLL_INTERVAL,
    World,
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


#: Kill delays 0.44 s, 1.92 s and 1.32 s: early (first wave in flight), late (polling), between.
#: (Seeds 3 and 4 gave 0.63 s and 0.62 s, the same point as each other; dropped for time.)
@pytest.mark.parametrize("seed", [1, 2, 5])
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


def test_a_ledger_that_cannot_be_written_stops_apply_with_an_error_not_a_crash(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk under the journal: no load goes out without its intent on disk, and the
    run ends with the ledger's one-line error and exit 1, not an internal error (exit 3)."""
    world.manifest("studio", [community_model(f"m{n}") for n in range(3)])
    world.manifest("farm", [enterprise_model("e1")])

    def full(self: JournalFile, lines: list[str]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(JournalFile, "append", full)
    result = world.apply()
    assert result.code == 1, result.text
    assert "cannot write the ledger journal" in result.err
    assert "No space left on device" in result.err
    assert "internal error" not in result.text
    assert world.mutations() == {}  # nothing was sent
