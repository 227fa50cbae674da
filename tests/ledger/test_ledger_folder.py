"""The folder ledger: one file per account, the journal, crash recovery, migration, the lock,
and refusal of bad files and symlinks."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from pydantic import ValidationError

from reconciler import cli
from reconciler.core.ledger_entries import Intent, LedgerEntry, LedgerState
from reconciler.errors import LedgerError, LedgerLocked
from reconciler.ledger import FolderLedger, default_ledger_path, open_ledger
from reconciler.ledger.folder import AccountFile, first_error
from reconciler.ledger.journal import (
    JOURNAL_NAME,
    GroupCommit,
    JournalFile,
    journal_line,
    replay,
)
from reconciler.manifest.loader import DEFAULT_MANIFEST_PATHS

RECOVERY_HINT = "Restore it from version control or a backup, or move it aside"
WHEN = "2026-11-25T10:00:00Z"


def entry(url: str = "wavymulder/Analog-Diffusion", outcome: str = "ready") -> LedgerEntry:
    return LedgerEntry.model_validate(
        {"spec_hash": f"sha256:{url}", "spec": {"url": url}, "applied_at": WHEN, "outcome": outcome}
    )


def record_all(ledger: FolderLedger, records: list[tuple[str, str, LedgerEntry | None]]) -> None:
    """One session that records ``records`` and ends normally."""

    async def main() -> None:
        with ledger.session() as session:
            for account, model_id, value in records:
                await session.record(account, model_id, value)

    anyio.run(main)


@pytest.fixture
def ledger(tmp_path: Path) -> FolderLedger:
    return FolderLedger(tmp_path / "ledger")


def test_a_missing_folder_reads_as_empty(ledger: FolderLedger) -> None:
    assert ledger.read() == LedgerState()
    assert not ledger.path.exists()


def test_round_trip_one_sorted_file_per_account(ledger: FolderLedger) -> None:
    record_all(
        ledger,
        [
            ("studio-prod", "b", entry("org/b")),
            ("studio-prod", "a", entry("org/a")),
            ("render-farm", "c", entry("org/c", "applied")),
        ],
    )
    state = ledger.read()
    assert state.entries("studio-prod") == {"a": entry("org/a"), "b": entry("org/b")}
    assert state.entries("render-farm") == {"c": entry("org/c", "applied")}
    assert sorted(p.name for p in ledger.path.iterdir()) == ["render-farm.json", "studio-prod.json"]
    text = (ledger.path / "studio-prod.json").read_text(encoding="utf-8")
    document = json.loads(text)
    assert text == json.dumps(document, indent=2) + "\n"  # one field a line: diffable
    assert list(document["models"]) == ["a", "b"]
    record_all(ledger, [("studio-prod", "b", entry("org/b"))])  # rewritten the same way
    assert (ledger.path / "studio-prod.json").read_text(encoding="utf-8") == text
    assert document["account"] == "studio-prod" and document["format_version"] == 2
    assert (ledger.path / "studio-prod.json").stat().st_mode & 0o777 == 0o600


def test_removing_the_last_entry_removes_the_account_file(ledger: FolderLedger) -> None:
    record_all(ledger, [("acct", "m", entry())])
    record_all(ledger, [("acct", "m", None)])
    assert ledger.read() == LedgerState()
    assert list(ledger.path.iterdir()) == []


def test_records_are_durable_before_the_run_ends(ledger: FolderLedger) -> None:
    """What a crash leaves: account files plus a journal that together read as the latest."""

    async def main() -> None:
        with ledger.session() as session:
            await session.record("acct", "m", entry("org/a"))
            await session.record("acct", "n", entry("org/n"))
            await session.record("acct", "m", entry("org/b"))
            await session.record("acct", "n", None)
            assert (ledger.path / JOURNAL_NAME).is_file()
            # another reader (say plan, while apply runs) sees every record so far
            assert FolderLedger(ledger.path).read().entries("acct") == {"m": entry("org/b")}

    anyio.run(main)
    assert not (ledger.path / JOURNAL_NAME).exists()  # folded into the account files
    assert ledger.read().entries("acct") == {"m": entry("org/b")}


@pytest.mark.parametrize("breaks_at", [1, 2], ids=["flusher's-batch", "a-later-batch"])
def test_a_journal_write_that_breaks_releases_every_writer_as_not_written(breaks_at: int) -> None:
    """A bug in the write (not an OSError) is raised to the writer that flushed; the others,
    of the batch that broke or the next one, learn their lines were not written, rather than
    wait forever or go on as if their intents were on disk."""
    calls: list[list[str]] = []

    def breaking(lines: list[str]) -> None:
        calls.append(lines)
        if len(calls) == breaks_at:
            raise RuntimeError("a bug")

    commit = GroupCommit(breaking, "journal.jsonl")
    outcomes: dict[str, str] = {}

    async def writer(name: str) -> None:
        try:
            await commit.submit(name)
        except LedgerError as exc:
            outcomes[name] = f"LedgerError: {exc}"
        except RuntimeError as exc:
            outcomes[name] = f"RuntimeError: {exc}"
        else:
            outcomes[name] = "written"

    async def main() -> None:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                for name in ("first", "second", "third"):
                    group.start_soon(writer, name)

    anyio.run(main)
    # the first writer flushes its line alone; the two others wait and go in the next batch
    assert calls[0] == ["first"]
    written = {line for batch in calls[: breaks_at - 1] for line in batch}
    assert outcomes["first"] == "RuntimeError: a bug"  # the flusher: the bug, as it is
    for name in ("second", "third"):
        expected = "written" if name in written else "LedgerError"
        assert outcomes[name].startswith(expected), outcomes


def test_many_records_of_one_account_are_one_journal_write(
    ledger: FolderLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outcomes at the end of an account's run: one write (and fsync), not one each."""
    writes: list[int] = []
    append = JournalFile.append

    def counted(self: JournalFile, lines: list[str]) -> None:
        writes.append(len(lines))
        append(self, lines)

    monkeypatch.setattr(JournalFile, "append", counted)
    outcomes: dict[str, LedgerEntry | None] = {f"m{n}": entry(f"org/m{n}") for n in range(50)}

    async def main() -> None:
        with ledger.session() as session:
            await session.record_many("acct", outcomes | {"gone": None})
            # on disk before the session ends: a crash now replays all of them
            assert FolderLedger(ledger.path).read().entries("acct") == outcomes

    anyio.run(main)
    assert writes == [51]
    assert ledger.read().entries("acct") == outcomes


def test_an_account_checkpointed_is_not_written_again_unless_recorded_since(
    ledger: FolderLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    write = FolderLedger.write_account

    def counted(self: FolderLedger, account: str, document: AccountFile) -> None:
        written.append(account)
        write(self, account, document)

    monkeypatch.setattr(FolderLedger, "write_account", counted)

    async def main() -> None:
        with ledger.session() as session:
            await session.record("done", "m", entry("org/a"))
            await session.record("later", "m", entry("org/a"))
            await session.checkpoint(["done", "later"])
            await session.record("later", "n", entry("org/n"))  # after its checkpoint

    anyio.run(main)
    assert sorted(written) == ["done", "later", "later"]  # "done" once: at its checkpoint
    assert ledger.read().entries("later") == {"m": entry("org/a"), "n": entry("org/n")}
    assert not (ledger.path / JOURNAL_NAME).exists()


@pytest.mark.parametrize("failures", [1, 2], ids=["checkpoint-fails", "close-fails-too"])
def test_a_file_that_could_not_be_written_loses_no_record(
    ledger: FolderLedger, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    """A failed checkpoint is written again at the end; failing again, the journal stays."""
    write = FolderLedger.write_account
    left = [failures]

    def full_disk(self: FolderLedger, account: str, document: AccountFile) -> None:
        if left[0]:
            left[0] -= 1
            raise LedgerError("cannot write ledger: No space left on device")
        write(self, account, document)

    async def main() -> None:
        with ledger.session() as session:
            await session.record("acct", "m", entry("org/a"))
            monkeypatch.setattr(FolderLedger, "write_account", full_disk)
            with pytest.raises(LedgerError):
                await session.checkpoint(["acct"])

    if failures == 1:
        anyio.run(main)
        assert not (ledger.path / JOURNAL_NAME).exists()  # folded in at the end
    else:
        with pytest.raises(LedgerError):
            anyio.run(main)
        assert (ledger.path / JOURNAL_NAME).is_file()  # kept: the next session replays it
    assert FolderLedger(ledger.path).read().entries("acct") == {"m": entry("org/a")}


def test_a_crashed_runs_journal_is_replayed_and_a_torn_line_dropped(ledger: FolderLedger) -> None:
    record_all(ledger, [("acct", "old", entry("org/old"))])
    intent = entry("org/old").model_copy(
        update={"pending": Intent(action="replace", spec_hash="sha256:org/new", at=WHEN)}
    )
    lines = [
        journal_line("acct", "old", intent),
        journal_line("acct", "new", entry("org/new", "applied")),
    ]
    (ledger.path / JOURNAL_NAME).write_text("\n".join(lines) + '\n{"account": "acct", "mo')
    state = ledger.read()
    assert state.entries("acct")["old"].pending == intent.pending  # the intent survives
    assert state.entries("acct")["new"] == entry("org/new", "applied")
    record_all(ledger, [])  # the next run folds it in and drops the journal
    assert not (ledger.path / JOURNAL_NAME).exists()
    assert ledger.read() == state


def test_a_run_killed_mid_record_leaves_a_readable_ledger(ledger: FolderLedger) -> None:
    """SIGKILL while records stream in: the ledger reads, every acknowledged record is there."""
    script = textwrap.dedent(
        f"""
        import anyio, sys
        from pathlib import Path
        from reconciler.core.ledger_entries import LedgerEntry
        from reconciler.ledger import FolderLedger

        async def main():
            with FolderLedger(Path({str(ledger.path)!r})).session() as session:
                for n in range(100000):
                    e = LedgerEntry(spec_hash=f"h{{n}}", applied_at="2026-01-01T00:00:00Z",
                                    outcome="applied")
                    await session.record("acct", f"m{{n % 50}}", e)
                    print(n, flush=True)

        anyio.run(main)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        acknowledged = -1
        for line in process.stdout:
            acknowledged = int(line)
            if acknowledged >= 300:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=30)
    entries = ledger.read().entries("acct")
    assert len(entries) == 50
    newest = max(int(e.spec_hash[1:]) for e in entries.values())
    assert newest >= acknowledged  # nothing acknowledged was lost


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format_version": 2, "account": "acct", "models": []}', "has the wrong shape (models"),
        ("[]", "has the wrong shape"),
        ('{"format_version": 2, "account": "a", "models": {"m": {"spec_hash": "x"}}}', "shape"),
        ('{"format_version": 3, "account": "acct"}', "has format_version 3"),
        ('{"account": "acct"}', "has format_version null"),
    ],
)
def test_a_bad_account_file_is_an_error_and_left_untouched(
    ledger: FolderLedger, text: str, problem: str
) -> None:
    ledger.path.mkdir()
    file = ledger.path / "acct.json"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(LedgerError) as caught:
        ledger.read()
    message = str(caught.value)
    assert problem in message
    assert str(file) in message
    assert RECOVERY_HINT in message
    assert "prune: managed" in message
    assert file.read_text(encoding="utf-8") == text


def test_a_binary_account_file_is_an_error_with_the_recovery_hint(ledger: FolderLedger) -> None:
    ledger.path.mkdir()
    (ledger.path / "acct.json").write_bytes(b"\xff\xfe\x00binary\x80")
    with pytest.raises(LedgerError, match="is not UTF-8 text") as caught:
        ledger.read()
    assert RECOVERY_HINT in str(caught.value)


def test_first_error_locates_the_problem_and_counts_the_others() -> None:
    with pytest.raises(ValidationError) as caught:
        LedgerState.model_validate({"format_version": 1, "accounts": {"a": {"m": {}}}})
    assert caught.value.error_count() > 1
    message = first_error(caught.value)
    assert message.startswith("accounts.a.m.")
    assert message.endswith(f"; and {caught.value.error_count() - 1} more")


# -- symlinks: never followed ------------------------------------------------------------------


def test_a_symlinked_ledger_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "ledger").symlink_to(target)
    with pytest.raises(LedgerError, match="is a symbolic link"):
        record_all(FolderLedger(tmp_path / "ledger"), [("acct", "m", entry())])
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("name", ["acct.json", JOURNAL_NAME])
def test_a_symlink_planted_in_the_folder_is_never_written_through(
    ledger: FolderLedger, tmp_path: Path, name: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    ledger.path.mkdir()
    (ledger.path / name).symlink_to(victim)
    with pytest.raises(LedgerError):
        record_all(ledger, [("acct", "m", entry())])
    assert victim.read_text(encoding="utf-8") == "precious\n"


def test_a_symlinked_legacy_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN=abc\n", encoding="utf-8")
    (tmp_path / "legacy.json").symlink_to(secret)
    with pytest.raises(LedgerError) as caught:
        FolderLedger(tmp_path / "ledger", legacy=tmp_path / "legacy.json").read()
    assert "TOKEN" not in str(caught.value)


# -- the lock ---------------------------------------------------------------------------------


def test_a_second_session_is_refused_and_told_who_holds_it(ledger: FolderLedger) -> None:
    with (
        ledger.session(),
        pytest.raises(LedgerLocked) as caught,
        FolderLedger(ledger.path).session(),
    ):
        pass  # pragma: no cover - refused
    message = str(caught.value)
    assert f"pid {os.getpid()}" in message
    assert "ps -p" in message and "nothing to delete by hand" in message
    assert not (ledger.path / ".holder").exists()
    with FolderLedger(ledger.path).session():  # released
        pass


def test_the_lock_cannot_be_broken_by_deleting_a_file(ledger: FolderLedger) -> None:
    """There is no lock file: deleting what a person sees in the folder lets nobody through."""
    with ledger.session():
        for path in ledger.path.iterdir():
            path.unlink()
        with pytest.raises(LedgerLocked), FolderLedger(ledger.path).session():
            pass  # pragma: no cover - refused


def test_a_killed_holders_lock_is_released_at_once(ledger: FolderLedger) -> None:
    holder = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from reconciler.ledger import FolderLedger
        with FolderLedger(Path({str(ledger.path)!r})).session():
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        with pytest.raises(LedgerLocked, match=f"pid {process.pid} "), ledger.session():
            pass  # pragma: no cover - refused
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    with ledger.session():  # the holder is gone, so is its lock
        pass


def test_a_folder_that_cannot_be_made_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(LedgerError, match=r"ledger .*not-a-dir.*: Not a directory"):
        record_all(FolderLedger(blocker / "sub"), [])


# -- where it lives, and the single-file ledger of earlier releases -----------------------------


def test_default_ledger_path_is_beside_the_manifests_folder_never_in_it(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    manifest = folder / "prod.yaml"
    manifest.write_text("", encoding="utf-8")
    assert default_ledger_path([str(folder)]) == tmp_path / ".reconciler-ledger"
    assert default_ledger_path([str(manifest)]) == tmp_path / ".reconciler-ledger"


def test_the_cli_and_the_ledger_share_the_default_manifest_folder() -> None:
    assert cli.DEFAULT_PATHS is DEFAULT_MANIFEST_PATHS
    expected = Path(DEFAULT_MANIFEST_PATHS[0]).resolve().parent / ".reconciler-ledger"
    assert default_ledger_path([]) == expected


def test_a_legacy_ledger_file_is_converted_on_first_use_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    legacy = folder / ".reconciler-ledger.json"
    old = LedgerState().with_entry("acct", "m", entry()).with_entry("other", "n", entry("o/n"))
    legacy.write_text(json.dumps(old.model_dump(mode="json")), encoding="utf-8")
    store = open_ledger(None, [str(folder)])
    assert store.read() == old  # read in place before any run converts it
    with store.session() as session:
        assert session.state == old
    assert store.read() == old
    assert not legacy.exists()
    assert (folder / ".reconciler-ledger.json.migrated").is_file()  # never lost
    assert sorted(p.name for p in (tmp_path / ".reconciler-ledger").iterdir()) == [
        "acct.json",
        "other.json",
    ]


def test_a_write_that_fails_part_way_leaves_no_torn_line_before_later_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-write: the torn bytes are cut back, so the next batch replays."""
    journal = JournalFile(tmp_path / JOURNAL_NAME)
    journal.append([journal_line("acct", "first", None)])
    real_write = os.write
    failures = iter([True])

    def write_half_then_fail(descriptor: int, data: bytes | memoryview) -> int:
        if next(failures, False):
            real_write(descriptor, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", write_half_then_fail)
    with pytest.raises(OSError):
        journal.append([journal_line("acct", "lost", None)])  # never acknowledged
    journal.append([journal_line("acct", "later", None)])
    journal.close()

    replayed = [model for _, model, _ in replay((tmp_path / JOURNAL_NAME).read_text())]
    assert replayed == ["first", "later"]
