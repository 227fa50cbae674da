"""Manifests parsed ahead in a second process: taken only for the very text, never trusted more.

The in-process tests hand the loader what the child would send (:func:`prefetch.parse_ahead`);
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
    monkeypatch.setattr(prefetch, "_parses", prefetch.parse_ahead([str(folder)]))
    parsed_here = _refuse_parsing_here(monkeypatch)
    assert load_manifests([folder]) == expected
    assert parsed_here == []
    assert prefetch._parses == {}  # each parse is taken once


def test_a_file_changed_since_it_was_parsed_ahead_is_parsed_again(
    manifest_tree: ManifestTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = manifest_tree({"a.yaml": _manifest("alpha"), "b.yaml": _manifest("beta")})
    monkeypatch.setattr(prefetch, "_parses", prefetch.parse_ahead([str(folder)]))
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
    monkeypatch.setattr(prefetch, "_parses", prefetch.parse_ahead([str(folder)]))
    parsed_here = _refuse_parsing_here(monkeypatch)
    with pytest.raises(Exception, match="alpha"):  # declared twice: the loader says so
        load_manifests([folder])
    assert parsed_here == [same]  # the second file parsed here: no document shared by both


def test_what_a_command_line_names_is_guessed_as_paths_that_exist(tmp_path: Path) -> None:
    manifests, ledger = tmp_path / "m", tmp_path / "l"
    manifests.mkdir()
    ledger.mkdir()
    args = ["--api-base", "http://x/api/", "apply", str(manifests), "--ledger", str(ledger)]
    assert prefetch.named_paths([*args, "-o", "json", "--account", "nowhere"]) == (
        str(manifests),
        str(ledger),  # an option's value: a wasted guess, never a wrong parse
    )
    assert prefetch.named_paths(["apply", "-o", "json"]) == ("manifests",)
    (tmp_path / "plan.json").write_text("{}", encoding="utf-8")
    saved = str(tmp_path / "plan.json")  # a saved plan: the manifests are the default folder
    assert prefetch.named_paths(["apply", saved, "--auto-approve"]) == ("manifests",)
    assert prefetch.named_paths(["plan", "-o", "json"]) is None  # its target is its CPU
    assert prefetch.named_paths(["emulator", "--port", "0"]) is None
    assert prefetch.named_paths(["--help"]) is None


def test_a_test_process_starts_no_child() -> None:
    prefetch.start_if_command_line()
    assert prefetch._child is None


needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
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
    assert "MODELSLAB_ALPHA_KEY" in runs["1"].stdout + runs["1"].stderr
    assert "parsed ahead in a second process: 3 files" in runs["1"].stderr
    assert "parsed ahead" not in runs["0"].stderr


CHILD = textwrap.dedent(
    """
    import json, os, sys
    from reconciler.manifest import prefetch

    folder, text, fail = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3] == "fail"
    if fail:
        prefetch.parse_ahead = lambda paths: 1 / 0  # the child's work fails
    prefetch.start([folder])
    pid = prefetch._child.pid
    if sys.argv[3] == "abandon":
        prefetch._abandon()  # what the exit does when nothing asked for the parses
        taken = None
    else:
        taken = prefetch.parsed(text) is not None
    try:
        os.waitpid(pid, os.WNOHANG)
        reaped = False
    except ChildProcessError:
        reaped = True
    print(json.dumps({"taken": taken, "reaped": reaped}))
    """
)


@pytest.mark.parametrize(
    ("how", "taken"), [("work", True), ("fail", False), ("abandon", None)], ids=str
)
def test_the_child_is_always_reaped_and_a_failed_one_is_only_a_miss(
    manifest_tree: ManifestTree, how: str, taken: bool | None
) -> None:
    folder = manifest_tree({"a.yaml": _manifest("alpha")})
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(folder / "a.yaml"), how],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert json.loads(done.stdout) == {"taken": taken, "reaped": True}
    assert done.stderr == ""  # the child writes nothing anywhere
