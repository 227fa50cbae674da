"""Manifests parsed ahead in a second process: taken only for the very text, never trusted more.

The in-process tests hand the loader what the child would send (:func:`prefetch.parse_each`);
forks happen only in fresh interpreters (a pytest worker has threads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
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
    assert "parsed ahead in a second process: 3 taken, 0 not" in runs["1"].stderr
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
    prefetch.start([folder])
    pid = prefetch._child.pid
    if how == "abandon":  # the exit's own finish() stops it
        print(json.dumps({"pid": pid}))
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
    pid = _run_child(folder, "abandon")["pid"]
    assert isinstance(pid, int)
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left to sleep a minute
        os.kill(pid, 0)


def test_a_child_reaped_elsewhere_and_an_ignored_sigchld_are_no_errors(
    manifest_tree: ManifestTree,
) -> None:
    folder = manifest_tree({"a.yaml": _manifest("alpha")})
    assert _run_child(folder, "reaped") == {"finished": True}
    # SIGCHLD ignored (as some supervisors start programs): the kernel reaps, so no child
    assert _run_child(folder, "sigchld") == {"can_fork": False}
