"""``atomic_write_text``: the one way the tool writes a whole file (plan, schema, ledger,
manifests, workflows, crash log, emulator state)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.errors import ConfigError
from reconciler.fsutil import SymlinkRefused, atomic_write_text
from reconciler.templates import write_workflows


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_creates_the_file_with_exactly_the_mode(tmp_path: Path, mode: int) -> None:
    previous = os.umask(0o077 if mode == 0o644 else 0o000)  # the umask changes nothing
    try:
        atomic_write_text(tmp_path / "f.json", "new\n", mode)
    finally:
        os.umask(previous)

    assert (tmp_path / "f.json").read_text(encoding="utf-8") == "new\n"
    assert mode_of(tmp_path / "f.json") == mode


def test_replaces_a_file_and_its_mode_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_text("old, longer than the new text\n", encoding="utf-8")
    target.chmod(0o666)

    atomic_write_text(target, "new\n", 0o600)

    assert target.read_text(encoding="utf-8") == "new\n"
    assert mode_of(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_refuses_a_symlink_and_touches_nothing(tmp_path: Path, dangling: bool) -> None:
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_text("precious\n", encoding="utf-8")
    link = tmp_path / "f.json"
    link.symlink_to(victim)

    with pytest.raises(SymlinkRefused, match="refusing to follow it") as caught:
        atomic_write_text(link, "new\n")

    assert str(link) in str(caught.value)
    assert link.is_symlink()
    assert victim.exists() is not dangling
    if not dangling:
        assert victim.read_text(encoding="utf-8") == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"f.json", *(["victim"] * (not dangling))}
    )


def test_refuses_a_folder(tmp_path: Path) -> None:
    (tmp_path / "f.json").mkdir()

    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "f.json", "new\n")

    assert (tmp_path / "f.json").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.json"
    target.write_text("old\n", encoding="utf-8")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)

    with pytest.raises(OSError, match="No space"):
        atomic_write_text(target, "new\n")

    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


@pytest.mark.parametrize("there", ["file", "symlink", "dangling"])
def test_without_overwrite_anything_at_the_path_is_kept(tmp_path: Path, there: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    target = tmp_path / "f.json"
    if there == "file":
        target.write_text("mine\n", encoding="utf-8")
    else:
        target.symlink_to(victim if there == "symlink" else tmp_path / "nowhere")

    with pytest.raises(FileExistsError):
        atomic_write_text(target, "new\n", overwrite=False)

    assert victim.read_text(encoding="utf-8") == "precious\n"
    if there == "file":
        assert target.read_text(encoding="utf-8") == "mine\n"
    else:
        assert target.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json", "victim"]


def test_without_overwrite_a_new_file_gets_the_text_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "f.json"

    atomic_write_text(target, "new\n", 0o644, overwrite=False)

    assert target.read_text(encoding="utf-8") == "new\n"
    assert mode_of(target) == 0o644
    assert target.stat().st_nlink == 1  # the temporary link is gone
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_replace_symlink_replaces_the_link_never_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    link = tmp_path / "f.json"
    link.symlink_to(victim)

    atomic_write_text(link, "new\n", 0o644, replace_symlink=True)

    assert not link.is_symlink()
    assert link.read_text(encoding="utf-8") == "new\n"
    assert victim.read_text(encoding="utf-8") == "precious\n"


def test_an_export_never_overwrites_a_file_that_appears_after_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "studio.yaml"
    target.write_text("mine\n", encoding="utf-8")
    monkeypatch.setattr(os.path, "lexists", lambda path: False)  # the check saw nothing

    with pytest.raises(ConfigError, match="already exists; nothing was written"):
        cli.write_new_file(target, "exported\n", force=False)

    assert target.read_text(encoding="utf-8") == "mine\n"
    assert [p.name for p in tmp_path.iterdir()] == ["studio.yaml"]


def test_init_never_overwrites_a_workflow_that_appears_after_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "apply.yml").write_text("mine\n", encoding="utf-8")
    monkeypatch.setattr(Path, "exists", lambda path: False)  # the check saw nothing

    with pytest.raises(ConfigError, match=r"apply\.yml exists"):
        write_workflows(tmp_path)

    assert (folder / "apply.yml").read_text(encoding="utf-8") == "mine\n"
