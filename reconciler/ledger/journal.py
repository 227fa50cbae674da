"""The ledger's write-ahead journal: append-only JSON lines, made durable in batches.

Recording one accepted request must cost O(1) in the ledger's size and never block the event
loop (a run may record thousands). Each record is one line appended to ``journal.jsonl``; the
lines of every record submitted while a write is under way are written and fsynced together
(group commit), in a worker thread. A record is durable when :meth:`GroupCommit.submit`
returns, which is what lets ``apply`` send a request only after its intent is on disk.

A crash can leave a torn last line: it was never acknowledged, so it is dropped on replay.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from reconciler.core.ledger_entries import LedgerEntry
from reconciler.errors import LedgerError

JOURNAL_NAME = "journal.jsonl"


class JournalFile:
    """The journal of one ledger folder, opened for appending (never through a symlink)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None
        #: Why the journal takes no more lines: a failed write that could not be undone.
        self._broken = ""

    def append(self, lines: list[str]) -> None:
        """Append whole lines and fsync; called from a worker thread.

        A write that fails part-way (a full disk) is cut back to where it began, so that no
        torn line sits before lines written later: the replay stops at the first torn line,
        and would lose them. If even that fails, the journal takes no more lines.
        """
        if self._broken:
            raise OSError(errno.EIO, self._broken)
        if self._descriptor is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
            self._descriptor = os.open(self.path, flags, 0o600)
        descriptor = self._descriptor
        start = os.fstat(descriptor).st_size
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        view = memoryview(data)
        try:
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
            os.fsync(descriptor)
        except OSError:
            try:
                os.ftruncate(descriptor, start)
                os.fsync(descriptor)
            except OSError:
                self._broken = "an earlier write failed and could not be undone"
            raise

    def close(self) -> None:
        """Close the file; the journal stays until the ledger is compacted."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def journal_line(account: str, model_id: str, entry: LedgerEntry | None) -> str:
    """One record as a compact JSON line; the entry serialised by pydantic-core (a third of
    the time of ``model_dump`` and ``json.dumps``, for every record of a run)."""
    text = "null" if entry is None else entry.model_dump_json(exclude_none=True)
    return f'{{"account":{json.dumps(account)},"entry":{text},"model":{json.dumps(model_id)}}}'


def replay(text: str) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """The records of a journal's text, in order; a torn or garbled line ends the replay.

    Only the last line can be torn (lines are appended whole and fsynced in order), so
    stopping there loses nothing that was ever acknowledged.
    """
    for line in text.splitlines():
        try:
            record = json.loads(line)
            account, model_id, entry = record["account"], record["model"], record["entry"]
        except (ValueError, KeyError, TypeError):
            return
        if not isinstance(account, str) or not isinstance(model_id, str):
            return
        if entry is not None and not isinstance(entry, dict):
            return
        yield account, model_id, entry


@dataclass
class _Batch:
    lines: list[str] = field(default_factory=list)
    done: anyio.Event = field(default_factory=anyio.Event)
    error: str = ""


class GroupCommit:
    """Durable appends for many concurrent writers: one write and one fsync per batch.

    The first writer that finds no write under way becomes the flusher: it writes batches in
    a worker thread until none is left; the others wait for their batch. The write is
    shielded from cancellation, so a batch is never half-acknowledged.
    """

    def __init__(self, write: Callable[[list[str]], None], where: str) -> None:
        self._write = write
        self._where = where
        self._open = _Batch()
        self._writing = False

    async def submit(self, *lines: str) -> None:
        """Append ``lines``; return once they are on disk. Raises LedgerError if they cannot be.

        The lines of one call go in the same batch, so a writer with many records (the
        outcomes at the end of an account's run) waits for one write, not one per record.
        """
        batch = self._open
        batch.lines.extend(lines)
        if self._writing:
            await batch.done.wait()
        else:
            self._writing = True
            try:
                while self._open.lines:
                    current, self._open = self._open, _Batch()
                    with anyio.CancelScope(shield=True):
                        try:
                            await anyio.to_thread.run_sync(self._write, current.lines)
                        except OSError as exc:
                            current.error = exc.strerror or str(exc)
                        except BaseException as exc:  # a bug: no writer may take it as written
                            current.error = f"{type(exc).__name__}: {exc}"
                            raise
                        finally:
                            current.done.set()
            except BaseException:
                # Nobody flushes what was submitted meanwhile: its writers must not wait forever.
                waiting, self._open = self._open, _Batch()
                waiting.error = "an earlier write of the journal failed"
                waiting.done.set()
                raise
            finally:
                self._writing = False
        if batch.error:
            raise LedgerError(
                f"cannot write the ledger journal {self._where}: {batch.error}; the request "
                "was not sent"
            )
