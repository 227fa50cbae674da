"""Progress of a run, shown as ``apply`` reports it through :class:`ProgressSink`.

On a terminal, a ``rich`` live display keeps one line per account (phase, counts, elapsed
time) with events printed above it; rich is imported only then, not by every command.
Elsewhere (CI logs, pipes), plain timestamped lines, one per event and one per account update
whose phase or counts changed, so logs stay short.

Events carry model ids and the API's own messages, so every text passes through
:func:`~reconciler.render.safe_text.safe_text` (and rich gets :class:`~rich.text.Text`, never
markup). Sinks only write to the stream they are given; they never raise (a broken stream must not
fail a run) and never decide anything about the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from reconciler.core.events import ProgressSink
from reconciler.render.safe_text import safe_text

if TYPE_CHECKING:  # rich is imported when a live display is made, not by every command
    from rich.console import Console, RenderableType

#: Counts are shown in this order (conditions, then outcomes); other keys follow, sorted.
_COUNT_ORDER = (
    "ready",
    "loading",
    "evicted",
    "missing",
    "unknown",
    "done",
    "sent",
    "failed",
    "timed-out",
    "skipped",
    "blocked",
)
#: Phases after which an account's clock stops.
_FINAL_PHASES = frozenset({"done", "failed"})


def make_progress(stream: TextIO, *, interactive: bool | None = None) -> ProgressSink:
    """A live display when ``stream`` is a terminal (or ``interactive``), else plain lines."""
    if interactive is None:
        interactive = _is_terminal(stream)
    if interactive:
        from rich.console import Console

        return LiveProgress(Console(file=stream, force_terminal=True))
    return PlainProgress(stream)


def format_counts(counts: Mapping[str, int], separator: str = ", ") -> str:
    """``ready 2, loading 1``: known keys in a fixed order, then the others sorted."""
    return separator.join(f"{key} {counts[key]}" for key in _ordered(counts))


def format_elapsed(seconds: float) -> str:
    """``00:12``, or ``1:02:03`` past an hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class PlainProgress:
    """Timestamped lines: ``2026-11-25T10:00:01Z studio-prod waiting: ready 2, loading 1``."""

    def __init__(
        self, stream: TextIO, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._stream = stream
        self._now = now
        self._last: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}
        self._lock = threading.Lock()

    def account_update(self, account: str, phase: str, counts: Mapping[str, int]) -> None:
        """Print a line only when the account's phase or counts differ from the last one."""
        key = (phase, tuple(sorted(counts.items())))
        with self._lock:
            if self._last.get(account) == key:
                return
            self._last[account] = key
            detail = format_counts(counts)
            self._emit(f"{account} {phase}: {detail}" if detail else f"{account} {phase}")

    def event(self, account: str, message: str) -> None:
        """Print the event on a line of its own."""
        with self._lock:
            self._emit(f"{account}: {message}")

    def close(self) -> None:
        """Flush what was written."""
        with self._lock, suppress(OSError, ValueError):
            self._stream.flush()

    def _emit(self, text: str) -> None:
        stamp = self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with suppress(OSError, ValueError):
            self._stream.write(f"{stamp} {safe_text(text)}\n")


@dataclass
class _AccountLine:
    phase: str
    counts: dict[str, int]
    started: float
    ended: float | None = None


class LiveProgress:
    """A ``rich`` live area, one line per account: ``studio-prod  waiting  ready 2  00:12``.

    State changes happen under this object's lock; rich is only called outside it, so rich's
    refresh thread (which reads the state through :meth:`renderable`) cannot deadlock with it.
    """

    def __init__(self, console: Console, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._console = console
        self._clock = clock
        self._accounts: dict[str, _AccountLine] = {}
        self._lock = threading.Lock()
        from rich.live import Live

        # No stdout/stderr redirection: the CLI may write a document to stdout while progress
        # goes to stderr, and that document must not be moved into the progress stream.
        self._live = Live(
            console=console,
            get_renderable=self.renderable,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._started = False
        self._closed = False

    def account_update(self, account: str, phase: str, counts: Mapping[str, int]) -> None:
        """Update the account's line; its clock starts at its first update."""
        now = self._clock()
        with self._lock:
            line = self._accounts.get(account)
            if line is None:
                line = self._accounts[account] = _AccountLine(phase, {}, now)
            line.phase, line.counts = phase, dict(counts)
            line.ended = now if phase in _FINAL_PHASES else None
        self._guarded(self._start)

    def event(self, account: str, message: str) -> None:
        """Print the event above the live area."""
        from rich.text import Text

        self._guarded(self._start)
        line = Text(safe_text(f"{account}: {message}"))
        self._guarded(lambda: self._live.console.print(line))

    def close(self) -> None:
        """Draw the final state once more and leave it on the terminal."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._started:
            self._guarded(self._live.stop)

    def renderable(self) -> RenderableType:
        """The live area: a grid with one row per account, in name order."""
        now = self._clock()
        with self._lock:
            rows = [
                (
                    name,
                    line.phase,
                    format_counts(line.counts, "  "),
                    (line.ended or now) - line.started,
                )
                for name, line in sorted(self._accounts.items())
            ]
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column()
        for name, phase, counts, elapsed in rows:
            # Text cells: a plain string would be read as rich markup.
            cells = (safe_text(name), safe_text(phase), safe_text(counts), format_elapsed(elapsed))
            grid.add_row(*(Text(cell) for cell in cells))
        return grid

    def _start(self) -> None:
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
        self._live.start()

    def _guarded(self, action: Callable[[], object]) -> None:
        """Run a display call; a display failure must never fail the run."""
        with suppress(Exception):
            action()


def _ordered(counts: Mapping[str, int]) -> list[str]:
    known = [key for key in _COUNT_ORDER if key in counts]
    return known + sorted(key for key in counts if key not in _COUNT_ORDER)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
