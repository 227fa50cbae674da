"""Where the ledger lives: a JSON file beside the manifests, written atomically, with a lock.

The ledger is what this tool last applied per account and model (see
:mod:`reconciler.core.records` for its shape). This module only reads, writes and locks it:
it makes no decision about what the entries mean. A ledger that cannot be read is an error
that says how to recover; it is never silently reset, because an empty ledger quietly turns
replace and ``prune: managed`` off.

:class:`LedgerStore` is the interface the engine uses, so that a git-branch store (for CI)
can sit beside :class:`JsonFileLedger` later.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Protocol

from pydantic import ValidationError

from reconciler.core.records import LEDGER_FORMAT_VERSION, LedgerState
from reconciler.errors import LedgerError, LedgerLocked
from reconciler.manifest.loader import DEFAULT_MANIFEST_PATHS

LEDGER_FILE_NAME = ".reconciler-ledger.json"


class LedgerStore(Protocol):
    """Reads, writes and locks one ledger."""

    def read(self) -> LedgerState:
        """The stored ledger; an empty one when none was ever written."""
        ...

    def write(self, state: LedgerState) -> None:
        """Replace the stored ledger with ``state``, all or nothing."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Hold the ledger for one run; raise :class:`LedgerLocked` if another run holds it."""
        ...


def default_ledger_path(manifest_paths: Sequence[str]) -> Path:
    """``.reconciler-ledger.json`` in the folder of the first manifest path.

    The first path is that folder when it is a directory, else its parent. With no paths, the
    CLI's default manifest folder is used.
    """
    first = Path((manifest_paths or DEFAULT_MANIFEST_PATHS)[0])
    folder = first if first.is_dir() else first.parent
    return folder / LEDGER_FILE_NAME


class JsonFileLedger:
    """A ledger kept in one JSON file (sorted keys, indent 2), replaced atomically on write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def lock_path(self) -> Path:
        """The file whose ``flock`` says a run holds the ledger; it holds that run's pid."""
        return self.path.with_name(self.path.name + ".lock")

    def read(self) -> LedgerState:
        """The ledger in the file; empty when the file does not exist.

        Raises:
            LedgerError: the file cannot be read, is not JSON, has another format version or
                the wrong shape. The file is left as it is.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return LedgerState()
        except OSError as exc:
            raise LedgerError(self._unusable(f"cannot be read ({_os_reason(exc)})")) from exc
        except UnicodeDecodeError as exc:
            raise LedgerError(self._unusable(f"is not UTF-8 text ({exc})")) from exc
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LedgerError(self._unusable(f"is not valid JSON ({exc})")) from exc
        self._check_version(document)
        try:
            return LedgerState.model_validate(document)
        except ValidationError as exc:
            raise LedgerError(self._unusable(f"has the wrong shape ({first_error(exc)})")) from exc

    def write(self, state: LedgerState) -> None:
        """Write ``state`` to a temporary file beside the ledger, fsync it, then rename it over.

        Raises:
            LedgerError: the folder or file cannot be written; the old ledger is unchanged.
        """
        text = json.dumps(state.model_dump(mode="json"), sort_keys=True, indent=2) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._replace_with(text)
        except OSError as exc:
            raise LedgerError(
                f"cannot write ledger {self.path}: {_os_reason(exc)}; the previous ledger is "
                "unchanged"
            ) from exc

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``<ledger>.lock`` for the duration of the block.

        Raises:
            LedgerLocked: another run (in this or another process) holds the lock.
            LedgerError: the ledger's folder cannot be made or the lock file cannot be opened.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(
                f"cannot create the ledger folder {self.path.parent}: {_os_reason(exc)}"
            ) from exc
        try:
            handle = self.lock_path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise LedgerError(
                f"cannot open the ledger lock {self.lock_path}: {_os_reason(exc)}"
            ) from exc
        with handle:
            self._acquire(handle)
            try:
                yield
            finally:
                _release(handle)

    # -- helpers ---------------------------------------------------------------------------

    def _unusable(self, problem: str) -> str:
        return (
            f"ledger {self.path} {problem}. It was left untouched. Restore it from version "
            "control or a backup, or move it aside to start afresh (replace and prune: managed "
            "are then off until models are applied again)"
        )

    def _check_version(self, document: Any) -> None:
        if not isinstance(document, dict):
            return  # the shape check reports it
        version = document.get("format_version")
        if version != LEDGER_FORMAT_VERSION:
            raise LedgerError(
                self._unusable(
                    f"has format_version {json.dumps(version)}, but this reconciler reads "
                    f"format_version {LEDGER_FORMAT_VERSION} (a newer reconciler may have "
                    "written it)"
                )
            )

    def _replace_with(self, text: str) -> None:
        descriptor, temp_name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        temp = Path(temp_name)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as temp_file:
                temp_file.write(text)
                temp_file.flush()
                os.fchmod(temp_file.fileno(), self._mode())
                os.fsync(temp_file.fileno())
            temp.replace(self.path)
        except BaseException:
            with suppress(OSError):
                temp.unlink()
            raise
        _fsync_folder(self.path.parent)

    def _mode(self) -> int:
        """Keep the permissions of the file being replaced; a new ledger gets rw-r--r--."""
        try:
            return self.path.stat().st_mode & 0o777
        except OSError:
            return 0o644

    def _acquire(self, handle: IO[str]) -> None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LedgerLocked(
                f"ledger {self.path} is locked by another reconciler run "
                f"(pid {_holder(handle)}); wait for it to finish, or remove {self.lock_path} "
                "if no run is active"
            ) from exc
        except OSError as exc:
            raise LedgerError(f"cannot lock ledger {self.path}: {_os_reason(exc)}") from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()


def _release(handle: IO[str]) -> None:
    """Clear the pid (a stale number would mislead) and unlock; the file itself stays.

    Removing the lock file would let a waiting run lock a file that a third run then replaces.
    """
    with suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.flush()
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _holder(handle: IO[str]) -> str:
    """The pid the holder wrote into the lock file, or ``unknown``."""
    with suppress(OSError, ValueError):
        handle.seek(0)
        text = handle.read().strip()
        if text.isdigit():
            return text
    return "unknown"


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; best effort, as not every filesystem allows it."""
    with suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def first_error(exc: ValidationError) -> str:
    """The first problem of a pydantic error, located, as ``where: message; and N more``."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "top level"
    more = exc.error_count() - 1
    suffix = f"; and {more} more" if more else ""
    return f"{where}: {error['msg']}{suffix}"
