"""Attacks through files: symlinks committed in a pull request, odd paths, and files the tool
writes (issue 9, "Files"; issue 14, "unreadable or dangling paths are errors with the path").

A manifest that resolves outside the named folders is refused without being read; a plan file
or schema whose path is a symlink is not written through; a FIFO, a device, a dangling link or
an unreadable folder is an error naming the path, never skipped and never waited on.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator.config import AccountConfig, EmulatorConfig
from reconciler.emulator.server import EmulatorHandle, running_emulator

from .security_support import Cli, Listener, manifest, write


@pytest.fixture
def secret_file(tmp_path: Path, canary: str) -> Path:
    """A file outside the repository whose content must never be printed.

    Its one line reads as a YAML mapping with an unknown key, which a validator that read it
    would quote back ("unknown key 'pw sk_canary_…'").
    """
    return write(tmp_path / "outside" / "credentials", f"pw {canary}: 1\n")


@pytest.mark.parametrize("command", ["validate", "plan", "status"])
def test_a_symlinked_manifest_pointing_outside_is_refused_unread(
    cli: Cli, workdir: Path, secret_file: Path, canary: str, listener: Listener, command: str
) -> None:
    write(workdir / "manifests/ok.yaml", manifest())
    (workdir / "manifests/leak.yaml").symlink_to(secret_file)

    result = cli("--api-base", listener.url(), command, "manifests")

    assert result.code == 1
    assert "manifests/leak.yaml:1:1: refused: a symlink that resolves outside manifests" in (
        result.err
    )
    assert canary not in result.text
    assert secret_file.name not in result.text  # the target is not even named
    assert listener.received == []


def test_a_symlinked_valid_manifest_outside_is_refused_too(
    cli: Cli, workdir: Path, tmp_path: Path
) -> None:
    """Not only foreign content: another team's manifest is not this folder's either."""
    other = write(tmp_path / "other-team/prod.yaml", manifest("other-prod"))
    (workdir / "manifests").mkdir()
    (workdir / "manifests/prod.yaml").symlink_to(other)

    result = cli("validate", "manifests")

    assert result.code == 1
    assert "manifests/prod.yaml:1:1: refused" in result.err


def test_a_named_file_may_not_be_a_symlink_out_of_its_folder(
    cli: Cli, workdir: Path, secret_file: Path, canary: str
) -> None:
    (workdir / "manifests").mkdir()
    (workdir / "manifests/leak.yaml").symlink_to(secret_file)

    result = cli("validate", "manifests/leak.yaml")

    assert result.code == 1
    assert "manifests/leak.yaml:1:1: refused" in result.err
    assert canary not in result.text


def test_a_symlinked_folder_pointing_outside_is_refused(
    cli: Cli, workdir: Path, secret_file: Path, canary: str
) -> None:
    write(secret_file.parent / "prod.yaml", manifest("stolen"))
    write(workdir / "manifests/ok.yaml", manifest())
    (workdir / "manifests/shared").symlink_to(secret_file.parent, target_is_directory=True)

    result = cli("validate", "manifests")

    assert result.code == 1
    assert "manifests/shared:1:1: refused" in result.err
    assert "stolen" not in result.text
    assert canary not in result.text


def test_a_symlink_within_the_folder_is_read_once(cli: Cli, workdir: Path) -> None:
    write(workdir / "manifests/real/prod.yaml", manifest())
    (workdir / "manifests/alias.yaml").symlink_to(workdir / "manifests/real/prod.yaml")

    result = cli("validate", "manifests")

    assert result.code == 0, result.err
    assert result.out == "1 account valid: studio-prod\n"


# ---------------------------------------------------------------------------------------------
# Paths that are not manifest files
# ---------------------------------------------------------------------------------------------


def _validate_in_a_process(*paths: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``reconciler validate`` in a child process: a regression that blocks fails, not hangs."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *paths],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_fifo_is_an_error_and_never_waited_on(workdir: Path) -> None:
    write(workdir / "manifests/ok.yaml", manifest())
    os.mkfifo(workdir / "manifests/pipe.yaml")
    os.mkfifo(workdir / "named.yaml")

    folder = _validate_in_a_process("manifests", cwd=workdir)
    named = _validate_in_a_process("named.yaml", cwd=workdir)

    assert folder.returncode == 1
    assert "manifests/pipe.yaml:1:1: not a regular file (a FIFO)" in folder.stderr
    assert named.returncode == 1
    assert "named.yaml:1:1: not a regular file or folder (a FIFO)" in named.stderr


def test_a_device_is_an_error_with_its_path(cli: Cli) -> None:
    result = cli("validate", "/dev/zero")

    assert result.code == 1
    assert result.err.startswith("/dev/zero:1:1: not a regular file or folder (a device)")


def test_a_dangling_manifest_symlink_is_an_error(cli: Cli, workdir: Path) -> None:
    write(workdir / "manifests/ok.yaml", manifest())
    (workdir / "manifests/gone.yaml").symlink_to(workdir / "manifests/deleted.yaml")
    (workdir / "named.yaml").symlink_to(workdir / "nowhere.yaml")

    in_folder = cli("validate", "manifests")
    named = cli("validate", "named.yaml")

    assert in_folder.code == 1
    assert "manifests/gone.yaml:1:1: broken symlink: no such target" in in_folder.err
    assert named.code == 1
    assert "named.yaml:1:1: broken symlink" in named.err


def test_a_symlink_loop_is_an_error_not_a_crash(cli: Cli, workdir: Path) -> None:
    write(workdir / "manifests/ok.yaml", manifest())
    (workdir / "manifests/a.yaml").symlink_to(workdir / "manifests/b.yaml")
    (workdir / "manifests/b.yaml").symlink_to(workdir / "manifests/a.yaml")

    in_folder = cli("validate", "manifests")
    named = cli("validate", "manifests/a.yaml")

    assert in_folder.code == 1
    assert "manifests/a.yaml:1:1: broken symlink" in in_folder.err
    assert "manifests/b.yaml:1:1: broken symlink" in in_folder.err
    assert named.code == 1
    assert "manifests/a.yaml:1:1: cannot read" in named.err
    assert "Traceback" not in in_folder.text + named.text


def test_an_unreadable_subfolder_is_an_error(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated (the suite may run as root, who reads everything): scandir is refused."""
    write(workdir / "manifests/ok.yaml", manifest())
    write(workdir / "manifests/locked/hidden.yaml", manifest("hidden"))
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> Iterator[os.DirEntry[str]]:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)

    result = cli("validate", "manifests")

    assert result.code == 1
    assert "manifests/locked:1:1: cannot read this folder: Permission denied" in result.err


# ---------------------------------------------------------------------------------------------
# Files the tool writes
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch, canary: str) -> Iterator[EmulatorHandle]:
    """An emulator with the manifest's account, its key in the variable the manifest names."""
    monkeypatch.setenv("MODELSLAB_KEY_STUDIO_PROD", canary)
    config = EmulatorConfig(
        accounts=[AccountConfig(name="studio-prod", key=canary, api="community")],
        spam_window_seconds=0,
        load_seconds=0,
    )
    with running_emulator(config) as handle:
        yield handle


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_plan_out_never_writes_through_a_symlink(
    cli: Cli, workdir: Path, tmp_path: Path, emulator: EmulatorHandle, dangling: bool
) -> None:
    write(workdir / "manifests/prod.yaml", manifest())
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_text("precious\n", encoding="utf-8")
    (workdir / "plan.json").symlink_to(victim)

    result = cli("--api-base", emulator.base_url, "plan", "manifests", "--out", "plan.json")

    assert result.code == 1
    assert "plan.json is a symbolic link; refusing to follow it" in result.err
    assert (workdir / "plan.json").is_symlink()
    if dangling:
        assert not victim.exists()
    else:
        assert victim.read_text(encoding="utf-8") == "precious\n"


def test_a_plan_file_is_private_and_written_whole(
    cli: Cli, workdir: Path, emulator: EmulatorHandle
) -> None:
    write(workdir / "manifests/prod.yaml", manifest())
    (workdir / "plan.json").write_text("old", encoding="utf-8")
    (workdir / "plan.json").chmod(0o644)

    result = cli("--api-base", emulator.base_url, "plan", "manifests", "--out", "plan.json")

    assert result.code == 0, result.err
    assert stat.S_IMODE((workdir / "plan.json").stat().st_mode) == 0o600
    assert sorted(p.name for p in workdir.iterdir()) == ["manifests", "plan.json"]  # no temp
    applied = cli("--api-base", emulator.base_url, "apply", "plan.json", "manifests", "--no-wait")
    assert applied.code == 0, applied.text


def test_schema_write_never_writes_through_a_symlink(
    cli: Cli, workdir: Path, tmp_path: Path
) -> None:
    victim = write(tmp_path / "victim.txt", "precious\n")
    (workdir / "schemas").mkdir()
    (workdir / "schemas/manifest.schema.json").symlink_to(victim)

    result = cli("schema", "--write")

    assert result.code == 1
    assert "is a symbolic link; refusing to follow it" in result.err
    assert victim.read_text(encoding="utf-8") == "precious\n"


def test_schema_write_keeps_the_committed_mode(cli: Cli, workdir: Path) -> None:
    previous = os.umask(0o077)
    try:
        result = cli("schema", "--write")
    finally:
        os.umask(previous)

    assert result.code == 0, result.err
    assert stat.S_IMODE((workdir / "schemas/manifest.schema.json").stat().st_mode) == 0o644
