"""Files the tool writes: atomically, never through a symlink, with the mode asked for.

Every whole file the reconciler writes (ledger files, the saved plan, the schema, exported and
starter manifests, workflows, the crash log, the emulator's state) goes through
:func:`atomic_write_text`, so that a crash leaves the old file or the new one, never half of
one, and a symlink planted where a file is expected (design.md §7) is refused instead of
followed. Reads that must not follow a symlink use :func:`read_text_nofollow`. Appends are not
whole-file writes and stay with their owners: the ledger's journal and GitHub's step files.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from contextlib import suppress
from pathlib import Path


class SymlinkRefused(OSError):
    """A path the tool writes or reads is a symlink; it is never followed."""


def refuse_symlink(path: Path) -> None:
    """Raise :class:`SymlinkRefused` if ``path`` itself is a symlink (dangling or not)."""
    with suppress(FileNotFoundError):
        if stat.S_ISLNK(path.lstat().st_mode):
            raise SymlinkRefused(f"{path} is a symbolic link; refusing to follow it")


def atomic_write_text(
    path: Path,
    text: str,
    mode: int = 0o600,
    *,
    durable: bool = True,
    overwrite: bool = True,
    replace_symlink: bool = False,
) -> None:
    """Write ``text`` to a new file beside ``path``, fsync it, and move it into place.

    The one writer of whole files: the temporary file is created exclusively (never through a
    symlink) with ``mode`` whatever the umask, so readers see the old file or the new one.

    - ``overwrite`` (the default) renames the new file over ``path``. A symlink at ``path`` is
      refused (:class:`SymlinkRefused`), to make the attempt visible; with ``replace_symlink``
      the link itself is replaced instead (the rename never writes through it).
    - ``overwrite=False`` hard-links the new file at ``path``, which fails with
      :class:`FileExistsError` if anything is there (a symlink too), even one that appeared
      a moment ago: "never over an existing file" without a check-then-write race.
    - ``durable=False`` skips the fsyncs, for files that only need to be whole (a lock's
      holder note, the emulator's state), not to survive a power cut.
    """
    if overwrite and not replace_symlink:
        refuse_symlink(path)
    descriptor, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    temp = Path(temp_name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if durable:
                os.fsync(handle.fileno())
        if overwrite:
            temp.replace(path)
        else:
            os.link(temp, path)
            temp.unlink()
    except BaseException:
        with suppress(OSError):
            temp.unlink()
        raise
    if durable:
        fsync_folder(path.parent)


def read_text_nofollow(path: Path) -> str:
    """The UTF-8 text of ``path``, refusing a symlink (raises FileNotFoundError if absent)."""
    return read_bytes_nofollow(path).decode("utf-8")


def read_bytes_nofollow(path: Path) -> bytes:
    """The bytes of ``path``, refusing a symlink (raises FileNotFoundError if absent)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the path is a symlink
            raise SymlinkRefused(f"{path} is a symbolic link; refusing to follow it") from exc
        raise
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read()


def fsync_folder(folder: Path) -> None:
    """Make renames in ``folder`` durable; best effort, as not every filesystem allows it."""
    with suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
