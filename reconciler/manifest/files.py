"""Which files the paths named on the command line stand for, and their text, read safely.

A manifest comes from a pull request (design.md §7): a named folder's ``*.yaml`` files, never a
file that a symlink places outside the named folders, never a FIFO or a device (read without
blocking), never more than :data:`MAX_MANIFEST_BYTES`. Every refusal is a problem at the path,
never a silent skip. No YAML and no models here: :mod:`reconciler.manifest.prefetch` reads the
same files in a second process with this module alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from reconciler.errors import ManifestProblem

#: The manifest folders read when no paths are given (the CLI, and the default ledger's place).
DEFAULT_MANIFEST_PATHS: tuple[str, ...] = ("manifests",)
MANIFEST_SUFFIXES = (".yaml", ".yml")
#: Beyond any honest manifest: one account of 100k models spelled out in full is about 20 MB
#: (issue 11: that is valid); anything larger is a mistake (or /dev/zero's cousin).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def display_path(path: Path) -> str:
    """A path as users wrote it (symlinks not followed), relative to the working directory
    when under it: a message names the link a user committed, never its target."""
    cwd = Path.cwd()
    for candidate in (path.absolute(), path.parent.resolve() / path.name):
        with contextlib.suppress(ValueError):
            return str(candidate.relative_to(cwd))
    return str(path)


def _path_problem(path: Path, message: str) -> ManifestProblem:
    """A problem with a path itself rather than its content: it points at the path's start."""
    return ManifestProblem(display_path(path), 1, 1, "", message)


def manifest_files(
    paths: Sequence[str | os.PathLike[str]], problems: list[ManifestProblem]
) -> Iterator[Path]:
    seen: set[str] = set()
    for raw in paths:
        for file in _files_of(Path(raw), problems):
            real = os.path.realpath(file)
            if real not in seen:
                seen.add(real)
                yield file


def _files_of(path: Path, problems: list[ManifestProblem]) -> list[Path]:
    """The manifests a named path stands for: itself, or the ``*.yaml`` files under it.

    Every file must resolve inside the named folder (for a named file: the folder it is
    named in), so that a committed symlink cannot make the tool read a file elsewhere.
    """
    try:
        info = path.stat()
    except OSError as exc:
        problems.append(_path_problem(path, _missing_reason(path, exc)))
        return []
    if stat.S_ISDIR(info.st_mode):
        before = len(problems)
        found = sorted(_walk(path, path.resolve(), problems))
        if not found and len(problems) == before:
            problems.append(_path_problem(path, "no *.yaml manifests in this folder"))
        return found
    if not stat.S_ISREG(info.st_mode):
        problems.append(_path_problem(path, f"not a regular file or folder ({_kind(info)})"))
        return []
    root = path.absolute().parent.resolve()
    if not _inside(path.resolve(), root):
        problems.append(_path_problem(path, _outside_message(root)))
        return []
    return [path]


def _walk(folder: Path, root: Path, problems: list[ManifestProblem]) -> Iterator[Path]:
    """The ``*.yaml``/``*.yml`` files under ``folder``; unreadable folders, broken links and
    links that leave ``root`` are problems, never silently skipped."""
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError as exc:
            problems.append(_path_problem(current, f"cannot read this folder: {_reason(exc)}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            manifest_name = path.suffix in MANIFEST_SUFFIXES
            if entry.is_symlink():
                target = Path(os.path.realpath(path))  # never raises, even on a link loop
                if not target.exists():
                    if manifest_name:
                        problems.append(_path_problem(path, "broken symlink: no such target"))
                    continue
                if not _inside(target, root):
                    if manifest_name or target.is_dir():
                        problems.append(_path_problem(path, _outside_message(root)))
                    continue
                if target.is_dir():
                    continue  # inside root: its files are found through their own path
            elif entry.is_dir(follow_symlinks=False):
                pending.append(path)
                continue
            if not manifest_name:
                continue
            try:
                info = path.stat()
            except OSError as exc:
                problems.append(_path_problem(path, f"cannot read: {_reason(exc)}"))
                continue
            if stat.S_ISREG(info.st_mode):
                yield path
            elif not stat.S_ISDIR(info.st_mode):
                problems.append(_path_problem(path, f"not a regular file ({_kind(info)})"))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _outside_message(root: Path) -> str:
    return (
        f"refused: a symlink that resolves outside {display_path(root)}; manifests must be files "
        "inside the folders named on the command line"
    )


def _kind(info: os.stat_result) -> str:
    if stat.S_ISFIFO(info.st_mode):
        return "a FIFO"
    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
        return "a device"
    if stat.S_ISSOCK(info.st_mode):
        return "a socket"
    return "not a regular file"


def _missing_reason(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "broken symlink: no such target" if path.is_symlink() else "no such file or folder"
    return f"cannot read: {_reason(exc)}"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def read_manifest_text(path: Path, name: str, problems: list[ManifestProblem]) -> str | None:
    """The file's text, read without blocking (never waits on a FIFO swapped in) and bounded."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        problems.append(ManifestProblem(name, 1, 1, "", f"cannot read: {_reason(exc)}"))
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            problems.append(ManifestProblem(name, 1, 1, "", f"not a regular file ({_kind(info)})"))
            return None
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        problems.append(ManifestProblem(name, 1, 1, "", f"larger than {MAX_MANIFEST_BYTES} bytes"))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line, column = before.count(b"\n") + 1, len(before) - before.rfind(b"\n")
        byte = data[exc.start]
        problems.append(
            ManifestProblem(name, line, column, "", f"not UTF-8 text (byte 0x{byte:02x})")
        )
        return None
