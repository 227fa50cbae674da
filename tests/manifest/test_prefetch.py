"""Manifests parsed ahead in a second process: taken only for the very text, never trusted more.

The in-process tests hand the loader what the child would send (:func:`prefetch.parse_each`);
forks happen only in fresh interpreters (a pytest worker has threads).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import click
import pytest

from reconciler.manifest import plainyaml, prefetch
from reconciler.manifest.loader import load_manifests

ManifestTree = Callable[[Mapping[str, str]], Path]

REPO = Path(__file__).resolve().parents[2]

MANIFEST = """\
version: 1
account: {name}
api: community
key_env: MODELSLAB_{upper}_KEY
models:
  - model_id: {model}
    url: org/{model}
    model_format: diffusers
    model_category: stable_diffusion
"""


def _manifest(name: str, model: str = "m1") -> str:
    return MANIFEST.format(name=name, upper=name.upper(), model=model)


def _refuse_parsing_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every text the loader parses itself (the fast reading)."""
    parsed_here: list[str] = []
    read_plain = plainyaml.read_plain

    def spy(text: str, *args: object, **kwargs: object) -> object:
        parsed_here.append(text)
        return read_plain(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(plainyaml, "read_plain", spy)
    return parsed_here


def test_the_loader_takes_the_parse_made_ahead_of_the_very_text_it_read(
    manifest_tree: ManifestTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = manifest_tree({"a.yaml": _manifest("alpha"), "b.yaml": _manifest("beta")})
    expected = load_manifests([folder])
    monkeypatch.setattr(prefetch, "_parses", dict(prefetch.parse_each([str(folder)])))
    parsed_here = _refuse_parsing_here(monkeypatch)
    assert load_manifests([folder]) == expected
    assert parsed_here == []
    assert prefetch._parses == {}  # each parse is taken once


def test_a_file_changed_since_it_was_parsed_ahead_is_parsed_again(
    manifest_tree: ManifestTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = manifest_tree({"a.yaml": _manifest("alpha"), "b.yaml": _manifest("beta")})
    monkeypatch.setattr(prefetch, "_parses", dict(prefetch.parse_each([str(folder)])))
    changed = _manifest("beta", model="m2")
    (folder / "b.yaml").write_text(changed, encoding="utf-8")
    parsed_here = _refuse_parsing_here(monkeypatch)
    accounts = {a.name: a for a in load_manifests([folder])}
    assert parsed_here == [changed]
    assert [m.model_id for m in accounts["beta"].desired()] == ["m2"]


def test_two_files_of_the_same_text_share_no_parse(
    manifest_tree: ManifestTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    same = _manifest("alpha")
    folder = manifest_tree({"a.yaml": same, "copy/a.yaml": same})
    monkeypatch.setattr(prefetch, "_parses", dict(prefetch.parse_each([str(folder)])))
    parsed_here = _refuse_parsing_here(monkeypatch)
    with pytest.raises(Exception, match="alpha"):  # declared twice: the loader says so
        load_manifests([folder])
    assert parsed_here == [same]  # the second file parsed here: no document shared by both


def test_the_manifest_paths_of_apply_are_read_as_its_parser_reads_them() -> None:
    named = prefetch.named_paths
    assert named(["--api-base", "http://x/api/", "apply", "m", "--ledger", "l", "-o", "json"]) == (
        "m",
    )
    assert named(["apply", "--account", "studio", "--timeout", "60", "a", "b"]) == ("a", "b")
    assert named(["apply", "--ledger", ".reconciler-ledger"]) == ("manifests",)
    assert named(["apply", "plan.json", "--auto-approve"]) == ("manifests",)  # a saved plan
    assert named(["apply", "--", "-odd"]) == ("-odd",)
    assert named(["plan", "--account", "apply"]) is None  # plan keeps its CPU (its target)
    assert named(["status", "apply"]) is None
    assert named(["--debug", "--version"]) is None


def test_the_options_that_take_a_value_are_the_command_line_s() -> None:
    from reconciler import cli

    def valued(command: click.Command) -> set[str]:
        return {
            name
            for param in command.params
            if isinstance(param, click.Option) and not param.is_flag and not param.count
            for name in (*param.opts, *param.secondary_opts)
        }

    assert isinstance(cli.cli, click.Group)
    assert valued(cli.cli) == prefetch.GLOBAL_VALUE_OPTIONS
    assert valued(cli.cli.commands["apply"]) == prefetch.APPLY_VALUE_OPTIONS


def test_a_test_process_starts_no_child() -> None:
    prefetch.start_if_command_line()
    assert prefetch._child is None


def test_no_child_under_two_cpus_nor_when_the_fork_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Sequence[str]] = []
    monkeypatch.setattr(sys, "argv", ["/usr/bin/reconciler", "apply", "m"])
    monkeypatch.setattr(prefetch, "_can_fork", lambda: True)
    monkeypatch.setattr(prefetch, "start", started.append)
    monkeypatch.setattr(prefetch, "_cpus", lambda: 1.5)  # a cgroup quota of one and a half
    prefetch.start_if_command_line()
    assert started == []
    monkeypatch.setattr(prefetch, "_cpus", lambda: 2.0)
    prefetch.start_if_command_line()
    assert started == [("m",)]


def test_a_fork_that_fails_is_only_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # a limit on processes

    before = sorted(fd.name for fd in Path("/proc/self/fd").iterdir())
    monkeypatch.setattr(os, "fork", refused)
    prefetch.start(["m"])
    assert prefetch._child is None
    assert sorted(fd.name for fd in Path("/proc/self/fd").iterdir()) == before  # pipe closed


def _assert_gone(stand_in: subprocess.Popen[bytes]) -> None:
    """The process was stopped and reaped (a ``sleep 60`` left alone would still be there)."""
    with pytest.raises(ProcessLookupError):
        os.kill(stand_in.pid, 0)
    stand_in.wait(10)  # Popen learns it is gone (reaped by the prefetch: no status for it)


def _frame(value: object) -> bytes:
    frame = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(frame).to_bytes(8, "big") + frame


def test_frames_are_taken_as_they_arrive_and_nothing_waits(
    manifest_tree: ManifestTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _manifest("alpha")
    folder = manifest_tree({"a.yaml": text})
    [(digest, parse)] = prefetch.parse_each([str(folder)])
    frame = _frame((digest, parse))
    stand_in = subprocess.Popen(["sleep", "60"])  # a real child to stop and reap
    read_end, write_end = os.pipe()
    child = prefetch._Child(stand_in.pid, read_end, prefetch._pidfd(stand_in.pid))
    monkeypatch.setattr(prefetch, "_child", child)
    monkeypatch.setattr(prefetch, "_parses", {})

    def taken_now() -> bool:  # on another thread: a loader that waited would hang here
        result: list[bool] = []
        worker = threading.Thread(target=lambda: result.append(prefetch.parsed(text) is not None))
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), "parsed() waited for the child"
        return result[0]

    for part in (frame[:3], frame[3:20], frame[20:-1]):  # the length split, then the frame
        os.write(write_end, part)
        assert not taken_now()
    os.write(write_end, frame[-1:])
    assert taken_now()
    os.close(write_end)  # the pipe's end: the child is stopped and reaped
    prefetch.parsed("another text")
    assert prefetch._child is None
    _assert_gone(stand_in)


def test_a_frame_of_anything_but_a_parse_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = subprocess.Popen(["sleep", "60"])
    read_end, write_end = os.pipe()
    monkeypatch.setattr(prefetch, "_child", prefetch._Child(stand_in.pid, read_end))
    monkeypatch.setattr(prefetch, "_parses", {})
    text = _manifest("alpha")
    os.write(write_end, _frame((prefetch._digest(text), os.system)))  # not a parse
    assert prefetch.parsed(text) is None
    assert prefetch._child is None  # a bad frame ends the child's part
    os.close(write_end)
    _assert_gone(stand_in)


def test_a_parse_with_dates_comes_through(manifest_tree: ManifestTree) -> None:
    text = _manifest("alpha") + "note_at: 2024-01-02 03:04:05+01:00\nnote_day: 2024-01-02\n"
    folder = manifest_tree({"a.yaml": text})
    [(digest, parse)] = prefetch.parse_each([str(folder)])
    assert parse.documents is not None
    read_end, write_end = os.pipe()
    os.write(write_end, _frame((digest, parse)))
    os.close(write_end)
    stand_in = subprocess.Popen(["sleep", "60"])
    saved = prefetch._child, dict(prefetch._parses)
    try:
        prefetch._child = prefetch._Child(stand_in.pid, read_end)
        assert prefetch.parsed(text) == parse
    finally:
        prefetch._child, prefetch._parses = saved[0], saved[1]
    stand_in.wait(10)


needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or prefetch._cpus() < 2,
    reason="the parse ahead runs only with two CPUs or more",
)


@needs_two_cpus
def test_apply_parses_ahead_and_says_the_same(manifest_tree: ManifestTree) -> None:
    folder = manifest_tree({f"{n}.yaml": _manifest(n) for n in ("alpha", "beta", "gamma")})
    keyless = {k: v for k, v in os.environ.items() if not k.startswith("MODELSLAB_")}
    runs = {}
    for switch in ("0", "1"):
        runs[switch] = subprocess.run(  # read, then refused: the accounts' keys are not set
            [sys.executable, "-m", "reconciler", "--debug", "apply", str(folder), "--no-ledger"],
            capture_output=True,
            text=True,
            check=False,
            env=keyless | {"RECONCILER_PREFETCH": switch},
        )
    assert runs["0"].returncode == runs["1"].returncode == 1, runs["1"].stderr
    assert runs["1"].stdout == runs["0"].stdout
    assert "MODELSLAB_ALPHA_KEY" in runs["1"].stdout
    # how many were taken depends on the child's pace (the loader never waits for it)
    assert "manifests parsed ahead in a second process:" in runs["1"].stderr
    assert "parsed ahead" not in runs["0"].stderr


CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from reconciler.manifest import prefetch

    folder, text, how = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
    if how == "fail":
        def failing(paths):
            print("LEAK", flush=True)
            print("LEAK", file=sys.stderr, flush=True)
            raise RuntimeError("the child's work fails")
        prefetch.parse_each = failing
    elif how == "abandon":
        prefetch.parse_each = lambda paths: time.sleep(60) or iter(())
    elif how == "sigchld":
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        print(json.dumps({"can_fork": prefetch._can_fork()}))
        sys.exit()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    prefetch.start([folder])
    pid = prefetch._child.pid
    if how == "abandon":  # the exit's own finish() stops it
        time.sleep(0.2)  # the child has set its own handlers
        status = open(f"/proc/{pid}/status").read()
        ignored = int(status.split("SigIgn:")[1].split()[0], 16)
        print(json.dumps({
            "pid": pid,
            "mask_kept": signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask,
            "child_ignores_sigint": bool(ignored & (1 << (signal.SIGINT - 1))),
        }))
        sys.exit()
    if how == "reaped":  # a child reaped by someone else: finish() still ends quietly
        os.waitpid(pid, 0)
        prefetch.finish()
        print(json.dumps({"finished": prefetch._child is None}))
        sys.exit()
    deadline = time.monotonic() + 30
    while prefetch._child is not None and time.monotonic() < deadline:
        prefetch._receive(prefetch._child)  # what arrives, until the child's pipe ends
        time.sleep(0.01)
    taken = prefetch.parsed(text) is not None
    try:
        os.waitpid(pid, os.WNOHANG)
        reaped = False
    except ChildProcessError:
        reaped = True
    print(json.dumps({"taken": taken, "reaped": reaped}))
    """
)


def _run_child(folder: Path, how: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(folder / "a.yaml"), how],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=60,
    )
    assert "LEAK" not in done.stdout + done.stderr  # the child writes nothing anywhere
    assert done.stderr == ""
    seen: dict[str, object] = json.loads(done.stdout)
    return seen


@pytest.mark.parametrize(("how", "taken"), [("work", True), ("fail", False)], ids=str)
def test_the_child_is_reaped_and_a_failed_one_is_only_a_miss(
    manifest_tree: ManifestTree, how: str, taken: bool
) -> None:
    folder = manifest_tree({"a.yaml": _manifest("alpha")})
    assert _run_child(folder, how) == {"taken": taken, "reaped": True}


def test_a_child_still_at_work_is_stopped_at_the_exit(manifest_tree: ManifestTree) -> None:
    folder = manifest_tree({"a.yaml": _manifest("alpha")})
    seen = _run_child(folder, "abandon")
    pid = seen["pid"]
    assert isinstance(pid, int)
    assert seen["mask_kept"] is True  # Ctrl-C reaches the parent as before the fork
    assert seen["child_ignores_sigint"] is True  # and leaves the child to the parent
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left to sleep a minute
        os.kill(pid, 0)


def test_a_child_reaped_elsewhere_and_an_ignored_sigchld_are_no_errors(
    manifest_tree: ManifestTree,
) -> None:
    folder = manifest_tree({"a.yaml": _manifest("alpha")})
    assert _run_child(folder, "reaped") == {"finished": True}
    # SIGCHLD ignored (as some supervisors start programs): the kernel reaps, so no child
    assert _run_child(folder, "sigchld") == {"can_fork": False}
