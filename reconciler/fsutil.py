"""Write a file the safe way: atomically, never through a symlink, with an exact mode.

The tool writes a few files a pull request could try to redirect (the plan file, the committed
schema, the ledger): a symlink committed where one of them goes must not make the tool
overwrite the file it points to. :func:`atomic_write_text` refuses a symlink at the target,
writes a temporary file beside it (created exclusively, never following a link), flushes it
to disk and renames it over the target, so a reader sees the old content or the new, never a
half-written file, and a crash leaves no partial file behind.

This module knows nothing of plans, schemas or ledgers, and prints nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

#: Why a write was refused, as ``OSError.strerror`` (callers print it after the path).
SYMLINK_REFUSED = "refusing to write through a symlink"


def atomic_write_text(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` (UTF-8), atomically, with permission bits ``mode``.

    Raises:
        OSError: the write failed; ``errno.ELOOP`` with :data:`SYMLINK_REFUSED` when ``path``
            is a symlink, ``errno.EISDIR`` when it is a folder or another non-regular file.
    """
    _refuse_unsafe_target(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # exactly ``mode``, whatever the umask
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        _refuse_unsafe_target(path)  # a link swapped in meanwhile is refused, not replaced
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _refuse_unsafe_target(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise OSError(errno.ELOOP, SYMLINK_REFUSED, str(path))
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EISDIR, "not a regular file", str(path))
