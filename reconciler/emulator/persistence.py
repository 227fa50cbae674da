"""The emulator's optional state file: accounts, models and the emulated now, as JSON.

With ``state_file`` set, a restarted emulator (``reconciler emulator --state-file F``) still
knows the accounts and models of the previous run, so a demo or a manual session can be
stopped and resumed. Writes go through :func:`reconciler.fsutil.atomic_write_text`, so a
crash mid-write never leaves half a file and a symlink at the path is refused. The file holds
the accounts' keys, so only its owner may read it (mode 0600), whatever the umask.

Only reading and writing; the state decides what to store.
"""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError
from reconciler.fsutil import atomic_write_text

FORMAT_VERSION = 1
#: rw------- : the state holds account keys.
STATE_FILE_MODE = 0o600


def write_state(path: Path, now: float, accounts: list[dict[str, Any]]) -> None:
    """Replace the file at ``path`` with the given state."""
    data = {"format_version": FORMAT_VERSION, "now": now, "accounts": accounts}
    # Saved at every change: whole, but not fsynced (a demo's state, not a ledger).
    text = json.dumps(data, indent=1, sort_keys=True)
    atomic_write_text(path, text, STATE_FILE_MODE, durable=False)
    # Earlier versions wrote through this fixed name; one a crash left behind is removed
    # (unlink never follows a symlink).
    with suppress(FileNotFoundError):
        path.with_name(f".{path.name}.tmp").unlink()


def read_state(path: Path) -> tuple[float, list[dict[str, Any]]] | None:
    """The emulated now and the accounts saved at ``path``; ``None`` if there is no file.

    Raises:
        ConfigError: the file exists but is not a state file of this format.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read emulator state: {exc}") from exc
    try:
        data = json.loads(text)
        if data["format_version"] != FORMAT_VERSION:
            raise ValueError(f"format_version {data['format_version']!r} is not supported")
        return float(data["now"]), list(data["accounts"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not an emulator state file: {exc}") from exc
