"""The crash log: what an unexpected error leaves behind for its bug report.

As pre-commit does, a bug does not flood the terminal: the CLI prints one line and writes the
version, the command and the traceback to ``$XDG_CACHE_HOME/reconciler/crash.log`` (default
``~/.cache``), with every key this process holds and every URL credential redacted, mode 0600.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from reconciler import __version__
from reconciler.api.secret import redact
from reconciler.fsutil import atomic_write_text


def crash_log_path(environ: Mapping[str, str]) -> Path:
    """Where the crash log goes: ``$XDG_CACHE_HOME/reconciler/crash.log``."""
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "reconciler" / "crash.log"


def write_crash_log(args: Sequence[str], trace: str, environ: Mapping[str, str]) -> Path | None:
    """Write the crash log; its path, or None when it cannot be written (never raises)."""
    path = crash_log_path(environ)
    text = (
        "### reconciler crash log\n\n"
        f"- when: {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        f"- version: reconciler {__version__}\n"
        f"- python: {sys.version.split()[0]} on {platform.platform()}\n"
        f"- command: reconciler {' '.join(args)}\n\n"
        "```\n"
        f"{trace.rstrip()}\n"
        "```\n"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_text(path, redact(text), 0o600)
    except OSError:
        return None
    return path
