"""The ledger kept in a folder: one JSON file per account, a journal, and a lock.

Layout of a ledger folder (readable and diffable by a person)::

    <folder>/
      studio-prod.json     one account: {"format_version", "account", "claim", "models"}
      render-farm.json
      journal.jsonl        only while a run is going (or after a crash): records since the
                           account files were last written
      .holder              who holds the folder's lock (pid, host, start), for messages

Reading costs the size of the ledger; recording costs O(1) (a journal line, see
:mod:`reconciler.ledger.journal`); each account's file is rewritten once when the account's
part of a run ends and when the run ends (compaction), after which the journal is removed. A
crash leaves account files and a journal that together read as the latest state.

The lock is an ``flock`` on the folder itself: the operating system releases it when the
holder ends, however it ends, so a lock can never be stale, and no lock file exists that a
person could be tempted to delete. Nothing in the folder is ever written or read through a
symlink.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.core.ledger_entries import LEDGER_FORMAT_VERSION, LedgerEntry, LedgerState, stamp
from reconciler.errors import LedgerError, LedgerLocked
from reconciler.fsutil import (
    SymlinkRefused,
    atomic_write_text,
    read_bytes_nofollow,
    read_text_nofollow,
)
from reconciler.ledger.journal import JOURNAL_NAME, GroupCommit, JournalFile, journal_line, replay
from reconciler.manifest.loader import collector_paused

#: The format of one account's file. Version 1 was the single-file ledger of earlier releases,
#: which is read and converted on first use (:func:`read_legacy_file`).
ACCOUNT_FILE_VERSION: Literal[2] = 2
HOLDER_NAME = ".holder"
FILE_MODE = 0o600


class Claim(BaseModel):
    """A run's hold on one account of a shared ledger (the git branch store).

    A run writes its claim before it sends anything for the account and clears it when the
    account is done. Another run that finds a live claim ends ``locked`` instead of sending
    the same requests; a claim past ``expires`` (its run died) is taken over.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: str = Field(description="Identifier of the run that holds the account.")
    host: str = Field(description="Host name of the machine that run is on.")
    pid: int = Field(description="Process id of that run.")
    at: str = Field(description="When the claim was made (ISO 8601 UTC).")
    expires: str = Field(description="When the claim lapses if never cleared (ISO 8601 UTC).")


class AccountFile(BaseModel):
    """The content of one account's ledger file."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[2] = Field(description="The format of this file; required.")
    account: str
    claim: Claim | None = None
    models: dict[str, LedgerEntry] = Field(default_factory=dict)


def account_file_text(document: AccountFile) -> str:
    """The account file's text: models sorted by id, indent 2, so that diffs stay small.

    Serialised by pydantic-core in one call (each spec's keys sorted by its serializer): a
    file of 100k entries takes a fraction of a second, where ``json.dumps(indent=...)`` (pure
    Python) takes seconds.
    """
    ordered = document.model_copy(update={"models": dict(sorted(document.models.items()))})
    return ordered.model_dump_json(indent=2, exclude_none=True) + "\n"


def parse_account_file(text: str | bytes, where: str) -> AccountFile:
    """Parse one account file; LedgerError with a recovery hint when it is not one."""
    with suppress(ValidationError):  # the fast path; else say what is wrong, in order
        return AccountFile.model_validate_json(text)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise LedgerError(unusable(where, f"is not UTF-8 text ({error})")) from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise LedgerError(unusable(where, f"is not valid JSON ({error})")) from error
    if isinstance(data, dict) and data.get("format_version") != ACCOUNT_FILE_VERSION:
        version = json.dumps(data.get("format_version"))
        raise LedgerError(
            unusable(
                where,
                f"has format_version {version}, but this reconciler reads format_version "
                f"{ACCOUNT_FILE_VERSION} (a newer reconciler may have written it)",
            )
        )
    try:
        return AccountFile.model_validate(data)
    except ValidationError as error:
        raise LedgerError(unusable(where, f"has the wrong shape ({first_error(error)})")) from error


def unusable(where: str, problem: str) -> str:
    """The message of a ledger that cannot be used: what is wrong and how to recover."""
    return (
        f"ledger {where} {problem}. It was left untouched. Restore it from version control or "
        "a backup, or move it aside to start afresh (replace and prune: managed are then off "
        "until models are applied again)"
    )


def first_error(exc: ValidationError) -> str:
    """The first problem of a pydantic error, located, as ``where: message; and N more``."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "top level"
    more = exc.error_count() - 1
    suffix = f"; and {more} more" if more else ""
    return f"{where}: {error['msg']}{suffix}"


def os_reason(exc: OSError) -> str:
    """An OSError's reason without the path noise."""
    return exc.strerror or str(exc)


def read_legacy_file(path: Path) -> LedgerState | None:
    """The single-file ledger of earlier releases (format_version 1), or None if absent."""
    try:
        text = read_text_nofollow(path)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(unusable(str(path), f"cannot be read ({exc})")) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LedgerError(unusable(str(path), f"is not valid JSON ({exc})")) from exc
    if not isinstance(data, dict) or data.get("format_version") != LEDGER_FORMAT_VERSION:
        raise LedgerError(unusable(str(path), "is not a ledger file of format_version 1"))
    try:
        return LedgerState.model_validate(data)
    except ValidationError as exc:
        raise LedgerError(unusable(str(path), f"has the wrong shape ({first_error(exc)})")) from exc


class FolderLedger:
    """A ledger folder on this machine (see the module docstring for the layout).

    ``legacy`` names a single-file ledger of an earlier release: while the folder holds no
    account file, it is read in its place, and the first run that writes converts it (the
    old file is renamed ``*.migrated``, never deleted).
    """

    def __init__(self, path: Path, legacy: Path | None = None) -> None:
        self.path = path
        self.legacy = legacy

    def __repr__(self) -> str:
        return f"FolderLedger({str(self.path)!r})"

    @property
    def description(self) -> str:
        """Where the ledger is, for messages."""
        return str(self.path)

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> LedgerState:
        """The ledger as the account files and any journal leave it; empty if none exists."""
        accounts, claims = self.read_accounts()
        del claims
        return LedgerState.model_construct(format_version=LEDGER_FORMAT_VERSION, accounts=accounts)

    def read_accounts(self) -> tuple[dict[str, dict[str, LedgerEntry]], dict[str, Claim]]:
        """Every account's entries (journal replayed) and the claims found in the files."""
        with collector_paused():  # parsing makes many objects and no cycles
            return self._read_accounts()

    def _read_accounts(self) -> tuple[dict[str, dict[str, LedgerEntry]], dict[str, Claim]]:
        self._check_folder()
        accounts: dict[str, dict[str, LedgerEntry]] = {}
        claims: dict[str, Claim] = {}
        if not self.path.exists():
            return self._legacy_accounts(), claims
        for file in sorted(self.account_files()):
            document = parse_account_file(self._read_bytes(file), str(file))
            accounts[document.account] = dict(document.models)
            if document.claim is not None:
                claims[document.account] = document.claim
        if not accounts:
            accounts = self._legacy_accounts()
        self._replay_journal(accounts)
        return accounts, claims

    def account_files(self) -> list[Path]:
        """The account files of the folder (hidden files and the journal excluded)."""
        return [
            path
            for path in self.path.iterdir()
            if path.suffix == ".json" and not path.name.startswith(".")
        ]

    def _legacy_accounts(self) -> dict[str, dict[str, LedgerEntry]]:
        legacy = read_legacy_file(self.legacy) if self.legacy is not None else None
        return {name: dict(models) for name, models in legacy.accounts.items()} if legacy else {}

    def _replay_journal(self, accounts: dict[str, dict[str, LedgerEntry]]) -> None:
        try:
            text = self._read(self.path / JOURNAL_NAME)
        except FileNotFoundError:
            return
        for account, model_id, data in replay(text):
            models = accounts.setdefault(account, {})
            if data is None:
                models.pop(model_id, None)
                continue
            try:
                models[model_id] = LedgerEntry.model_validate(data)
            except ValidationError:
                break  # as a torn line: nothing after it was acknowledged

    def _read(self, path: Path) -> str:
        data = self._read_bytes(path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LedgerError(unusable(str(path), f"is not UTF-8 text ({exc})")) from exc

    def _read_bytes(self, path: Path) -> bytes:
        try:
            return read_bytes_nofollow(path)
        except FileNotFoundError:
            raise
        except SymlinkRefused as exc:
            raise LedgerError(f"ledger {path}: {exc}") from exc
        except OSError as exc:
            raise LedgerError(unusable(str(path), f"cannot be read ({os_reason(exc)})")) from exc

    def _check_folder(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LedgerError(f"cannot use ledger {self.path}: {os_reason(exc)}") from exc
        if stat.S_ISLNK(mode):
            raise LedgerError(
                f"ledger {self.path} is a symbolic link; refusing to follow it (name a real "
                "folder with --ledger)"
            )
        if not stat.S_ISDIR(mode):
            raise LedgerError(
                f"ledger {self.path} is not a folder; a single-file ledger of an earlier "
                "release is converted only from its old place beside the manifests: move it "
                f"aside and pass it with --ledger {self.path}.d, or name a folder"
            )

    # -- writing ------------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[FolderSession]:
        """Hold the folder for one run: lock, recover a crashed run's journal, yield, compact.

        Raises:
            LedgerLocked: another run holds the folder.
            LedgerError: the folder cannot be made, locked, read or written.
        """
        self._check_folder()
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise LedgerError(
                f"cannot create the ledger folder {self.path}: {os_reason(exc)}"
            ) from exc
        self._check_folder()
        with self._locked():
            accounts, claims = self.read_accounts()
            session = FolderSession(self, accounts, claims)
            session.compact(session.accounts_in_journal() | self._migrated_accounts(accounts))
            self._retire_legacy()
            try:
                yield session
            finally:
                session.close()

    def _migrated_accounts(self, accounts: Mapping[str, object]) -> set[str]:
        on_disk = {path.stem for path in self.account_files()}
        return set(accounts) - on_disk

    def _retire_legacy(self) -> None:
        """Rename a converted single-file ledger to ``*.migrated``: kept, never read again."""
        if self.legacy is None or not self.account_files():
            return
        with suppress(FileNotFoundError):
            if stat.S_ISREG(self.legacy.lstat().st_mode):
                self.legacy.replace(self.legacy.with_name(self.legacy.name + ".migrated"))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        try:
            descriptor = os.open(self.path, flags)
        except OSError as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {os_reason(exc)}") from exc
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise LedgerLocked(self._locked_message()) from exc
                raise LedgerError(f"cannot lock ledger {self.path}: {os_reason(exc)}") from exc
            self._write_holder()
            try:
                yield
            finally:
                with suppress(OSError):
                    (self.path / HOLDER_NAME).unlink()
                fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)

    def _write_holder(self) -> None:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now_stamp()}
        with suppress(OSError):
            atomic_write_text(self.path / HOLDER_NAME, json.dumps(holder) + "\n", durable=False)

    def _locked_message(self) -> str:
        holder: dict[str, Any] = {}
        with suppress(OSError, ValueError, UnicodeDecodeError):
            holder = json.loads(read_text_nofollow(self.path / HOLDER_NAME))
        who = (
            f"pid {holder.get('pid')} on host {holder.get('host')}, since {holder.get('since')}"
            if holder
            else "a process on this machine"
        )
        return (
            f"ledger {self.path} is in use by another reconciler run ({who}). Wait for it to "
            "end, or see whether it still runs (`ps -p PID` on that host); the lock is held by "
            "the operating system and released as soon as that process ends, however it ends, "
            "so there is nothing to delete by hand"
        )

    def write_account(self, account: str, document: AccountFile) -> None:
        """Replace one account's file atomically (used by compaction and the git store)."""
        try:
            atomic_write_text(self.path / f"{account}.json", account_file_text(document), FILE_MODE)
        except OSError as exc:
            raise LedgerError(
                f"cannot write ledger {self.path / (account + '.json')}: {os_reason(exc)}; the "
                "journal still holds every record"
            ) from exc

    def remove_account(self, account: str) -> None:
        """Remove the file of an account that has no entry left."""
        with suppress(FileNotFoundError):
            (self.path / f"{account}.json").unlink()


class FolderSession:
    """One run's hold on a ledger folder: the current entries, and durable records.

    ``state`` is the ledger as it was when the run started (what the plan is made from);
    :meth:`current` is the ledger as the run has left it so far.
    """

    def __init__(
        self,
        ledger: FolderLedger,
        accounts: dict[str, dict[str, LedgerEntry]],
        claims: dict[str, Claim],
    ) -> None:
        self.ledger = ledger
        self._accounts = accounts
        self.claims = claims
        self.state = LedgerState.model_construct(
            format_version=LEDGER_FORMAT_VERSION,
            accounts={name: dict(models) for name, models in accounts.items()},
        )
        self._journal = JournalFile(ledger.path / JOURNAL_NAME)
        self._commit = GroupCommit(self._journal.append, str(self._journal.path))
        self._touched: set[str] = set()
        #: Touched accounts with records their file does not hold yet (see :meth:`compact`).
        self._dirty: set[str] = set()
        #: Things the user should know about the ledger (the git store adds take-overs).
        self.notices: list[str] = []

    def reset(self, accounts: dict[str, dict[str, LedgerEntry]], claims: dict[str, Claim]) -> None:
        """Start from other entries (the git store's branch files): state, current, claims."""
        self._accounts = accounts
        self.claims = claims
        self.state = LedgerState.model_construct(
            format_version=LEDGER_FORMAT_VERSION,
            accounts={name: dict(models) for name, models in accounts.items()},
        )

    def accounts_in_journal(self) -> set[str]:
        """Accounts that a crashed run's journal touched (compacted at the session's start)."""
        try:
            text = read_text_nofollow(self.ledger.path / JOURNAL_NAME)
        except (OSError, UnicodeDecodeError):
            return set()
        return {account for account, _, _ in replay(text)}

    def current(self, account: str) -> Mapping[str, LedgerEntry]:
        """The account's entries as this run has left them so far."""
        return self._accounts.get(account, {})

    def current_state(self, accounts: Collection[str]) -> LedgerState:
        """The current entries of ``accounts`` as a ledger, for re-planning them."""
        return LedgerState.model_construct(
            format_version=LEDGER_FORMAT_VERSION,
            accounts={name: dict(self._accounts.get(name, {})) for name in accounts},
        )

    async def record(self, account: str, model_id: str, entry: LedgerEntry | None) -> None:
        """Set (or remove) one entry; durable when this returns. O(1) in the ledger's size."""
        await self.record_many(account, {model_id: entry})

    async def record_many(self, account: str, entries: Mapping[str, LedgerEntry | None]) -> None:
        """Set (or remove) several entries of one account with one journal write."""
        await self._commit.submit(
            *(journal_line(account, model_id, entry) for model_id, entry in entries.items())
        )
        models = self._accounts.setdefault(account, {})
        for model_id, entry in entries.items():
            if entry is None:
                models.pop(model_id, None)
            else:
                models[model_id] = entry
        self._touched.add(account)
        self._dirty.add(account)  # after the entry is in: a compaction running now may miss it

    async def claim(self, accounts: Collection[str]) -> None:
        """Nothing to claim: the folder's lock already holds every account for this run."""

    async def checkpoint(self, accounts: Collection[str]) -> None:
        """Rewrite the files of ``accounts`` from the current entries, off the event loop."""
        names = set(accounts) & self._touched
        if names:
            await anyio.to_thread.run_sync(self.compact, names)

    def compact(self, accounts: Collection[str]) -> None:
        """Write each account's file from the current entries (an empty account's is removed)."""
        for account in sorted(accounts):
            # Before the entries are read: a record that lands after this marks it again. A
            # write that fails marks it again too: the journal must then outlive the session.
            self._dirty.discard(account)
            try:
                self._write(account)
            except BaseException:
                self._dirty.add(account)
                raise

    def _write(self, account: str) -> None:
        models = self._accounts.get(account, {})
        if not models and account not in self.claims:
            self.ledger.remove_account(account)
            return
        document = AccountFile(
            format_version=ACCOUNT_FILE_VERSION,
            account=account,
            claim=self.claims.get(account),
            models=models,
        )
        self.ledger.write_account(account, document)

    def close(self) -> None:
        """Compact the accounts recorded since their last compaction, then drop the journal.

        An account checkpointed when its part of the run ended is not written twice; one whose
        file could not be written is tried again here, and if that fails too the journal stays
        (the next session replays it).
        """
        self._journal.close()
        self.compact(self._dirty)
        with suppress(FileNotFoundError):
            (self.ledger.path / JOURNAL_NAME).unlink()

    @property
    def touched(self) -> set[str]:
        """Accounts this run recorded something for."""
        return set(self._touched)


def _now_stamp() -> str:
    return stamp(datetime.now(UTC))
