"""The JSON file ledger: round trip, refusal of bad files, atomic writes, and the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler import cli
from reconciler.core.records import LedgerEntry, LedgerState
from reconciler.errors import LedgerError, LedgerLocked
from reconciler.ledger import JsonFileLedger, LedgerStore, default_ledger_path
from reconciler.ledger.store import first_error
from reconciler.manifest.loader import DEFAULT_MANIFEST_PATHS

RECOVERY_HINT = "Restore it from version control or a backup, or move it aside"


@pytest.fixture
def state() -> LedgerState:
    entry = LedgerEntry(
        spec_hash="sha256:aaaa",
        spec={"url": "wavymulder/Analog-Diffusion"},
        applied_at="2026-11-25T10:00:00Z",
        outcome="ready",
    )
    return LedgerState().with_entry("studio-prod", "analog-diffusion", entry)


@pytest.fixture
def ledger(tmp_path: Path) -> JsonFileLedger:
    return JsonFileLedger(tmp_path / ".reconciler-ledger.json")


def test_is_a_ledger_store(ledger: JsonFileLedger) -> None:
    store: LedgerStore = ledger
    assert store.read() == LedgerState()


def test_round_trip(ledger: JsonFileLedger, state: LedgerState) -> None:
    ledger.write(state)
    assert ledger.read() == state


def test_file_is_sorted_indented_json(ledger: JsonFileLedger, state: LedgerState) -> None:
    ledger.write(state)
    text = ledger.path.read_text(encoding="utf-8")
    assert text == json.dumps(state.model_dump(mode="json"), sort_keys=True, indent=2) + "\n"


def test_missing_file_reads_as_empty(ledger: JsonFileLedger) -> None:
    assert ledger.read() == LedgerState()
    assert not ledger.path.exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format_version": 1, "accounts": []}', "has the wrong shape (accounts"),
        ("[]", "has the wrong shape"),
        ('{"format_version": 1, "accounts": {"a": {"m": {"spec_hash": "x"}}}}', "wrong shape"),
        ('{"format_version": 2, "accounts": {}}', "has format_version 2"),
        ('{"accounts": {}}', "has format_version null"),
    ],
)
def test_bad_ledger_is_an_error_and_left_untouched(
    ledger: JsonFileLedger, text: str, problem: str
) -> None:
    ledger.path.write_text(text, encoding="utf-8")
    with pytest.raises(LedgerError) as caught:
        ledger.read()
    message = str(caught.value)
    assert problem in message
    assert str(ledger.path) in message
    assert RECOVERY_HINT in message
    assert "prune: managed" in message
    assert ledger.path.read_text(encoding="utf-8") == text


def test_translated_errors_keep_their_cause(ledger: JsonFileLedger) -> None:
    ledger.path.write_text("{", encoding="utf-8")
    with pytest.raises(LedgerError) as caught:
        ledger.read()
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


def test_unreadable_file_is_an_error(ledger: JsonFileLedger) -> None:
    ledger.path.mkdir()  # reading a directory fails with an OSError
    with pytest.raises(LedgerError, match="cannot be read"):
        ledger.read()


def test_binary_file_is_an_error_with_the_recovery_hint(ledger: JsonFileLedger) -> None:
    garbage = b"\xff\xfe\x00binary\x80"
    ledger.path.write_bytes(garbage)
    with pytest.raises(LedgerError) as caught:
        ledger.read()
    message = str(caught.value)
    assert f"ledger {ledger.path} is not UTF-8 text" in message
    assert RECOVERY_HINT in message
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)
    assert ledger.path.read_bytes() == garbage


def test_first_error_locates_the_problem_and_counts_the_others() -> None:
    with pytest.raises(ValidationError) as caught:
        LedgerState.model_validate({"format_version": 1, "accounts": {"a": {"m": {}}}})
    assert caught.value.error_count() > 1
    message = first_error(caught.value)
    assert message.startswith("accounts.a.m.")
    assert message.endswith(f"; and {caught.value.error_count() - 1} more")


def test_write_leaves_no_temporary_files(ledger: JsonFileLedger, state: LedgerState) -> None:
    ledger.write(state)
    ledger.write(LedgerState())
    assert sorted(p.name for p in ledger.path.parent.iterdir()) == [ledger.path.name]
    assert ledger.read() == LedgerState()


def test_write_keeps_permissions(ledger: JsonFileLedger, state: LedgerState) -> None:
    ledger.write(state)
    assert ledger.path.stat().st_mode & 0o777 == 0o644
    ledger.path.chmod(0o600)
    ledger.write(state)
    assert ledger.path.stat().st_mode & 0o777 == 0o600


def test_failed_write_keeps_the_old_ledger(tmp_path: Path, state: LedgerState) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(LedgerError, match="cannot write ledger"):
        JsonFileLedger(blocker / "ledger.json").write(state)


def test_write_creates_the_folder(tmp_path: Path, state: LedgerState) -> None:
    ledger = JsonFileLedger(tmp_path / "state" / "ledger.json")
    ledger.write(state)
    assert ledger.read() == state


def test_lock_creates_the_folder(tmp_path: Path, state: LedgerState) -> None:
    ledger = JsonFileLedger(tmp_path / "new" / "dir" / "ledger.json")
    with ledger.lock():
        assert ledger.lock_path.is_file()
        ledger.write(state)
    assert ledger.read() == state


def test_lock_in_a_folder_that_cannot_be_made_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    ledger = JsonFileLedger(blocker / "sub" / "ledger.json")
    with pytest.raises(LedgerError) as caught, ledger.lock():
        pass  # pragma: no cover - the lock is refused
    assert f"cannot create the ledger folder {blocker / 'sub'}: " in str(caught.value)


def test_second_lock_in_process_is_refused(ledger: JsonFileLedger) -> None:
    other = JsonFileLedger(ledger.path)
    with ledger.lock():
        assert ledger.lock_path.read_text(encoding="utf-8").strip() == str(os.getpid())
        with pytest.raises(LedgerLocked) as caught, other.lock():
            pass  # pragma: no cover - the lock is refused
    message = str(caught.value)
    assert f"ledger {ledger.path} is locked by another reconciler run (pid {os.getpid()})" in (
        message
    )
    assert f"remove {ledger.lock_path} if no run is active" in message
    with other.lock():  # released: the other store can take it now
        pass


def test_lock_held_by_another_process(ledger: JsonFileLedger) -> None:
    holder = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from reconciler.ledger import JsonFileLedger
        with JsonFileLedger(Path({str(ledger.path)!r})).lock():
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", holder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stdin is not None
        try:
            assert process.stdout.readline().strip() == "locked"
            with pytest.raises(LedgerLocked, match=f"pid {process.pid}\\)"), ledger.lock():
                pass  # pragma: no cover - the lock is refused
        finally:
            process.stdin.write("\n")
            process.stdin.flush()
        assert process.wait(timeout=30) == 0
    with ledger.lock():  # the holder is gone, so is its lock
        pass


def test_lock_is_released_on_error(ledger: JsonFileLedger) -> None:
    with pytest.raises(RuntimeError), ledger.lock():
        raise RuntimeError("boom")
    with ledger.lock():
        pass
    assert ledger.lock_path.read_text(encoding="utf-8") == ""


def test_default_ledger_path(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    manifest = folder / "prod.yaml"
    manifest.write_text("", encoding="utf-8")
    assert default_ledger_path([str(folder)]) == folder / ".reconciler-ledger.json"
    assert default_ledger_path([str(manifest), str(tmp_path)]) == (
        folder / ".reconciler-ledger.json"
    )
    assert default_ledger_path([]) == Path("manifests") / ".reconciler-ledger.json"


def test_the_cli_and_the_ledger_share_the_default_manifest_folder() -> None:
    assert cli.DEFAULT_PATHS is DEFAULT_MANIFEST_PATHS
    assert default_ledger_path([]) == Path(DEFAULT_MANIFEST_PATHS[0]) / ".reconciler-ledger.json"
