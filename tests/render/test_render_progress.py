"""Progress sinks: plain timestamped lines (deduplicated) and the rich live display."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

from rich.console import Console

from reconciler.core.events import ProgressSink
from reconciler.render.progress import (
    LiveProgress,
    PlainProgress,
    format_counts,
    format_elapsed,
    make_progress,
)


class Ticker:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def test_plain_lines_are_timestamped_and_deduplicated() -> None:
    stream = io.StringIO()
    sink: ProgressSink = PlainProgress(stream, now=Ticker())
    sink.account_update("studio-prod", "waiting", {"loading": 1, "ready": 2})
    sink.account_update("studio-prod", "waiting", {"ready": 2, "loading": 1})  # same: quiet
    sink.event("studio-prod", "analog-diffusion is ready")
    sink.account_update("studio-prod", "waiting", {"ready": 3, "loading": 0})
    sink.account_update("gpu-box", "applying", {})
    sink.account_update("studio-prod", "done", {"ready": 3, "loading": 0})
    sink.close()
    assert stream.getvalue().splitlines() == [
        "2026-11-25T10:00:01Z studio-prod waiting: ready 2, loading 1",
        "2026-11-25T10:00:02Z studio-prod: analog-diffusion is ready",
        "2026-11-25T10:00:03Z studio-prod waiting: ready 3, loading 0",
        "2026-11-25T10:00:04Z gpu-box applying",
        "2026-11-25T10:00:05Z studio-prod done: ready 3, loading 0",
    ]


def test_plain_sink_never_raises_on_a_closed_stream() -> None:
    stream = io.StringIO()
    sink = PlainProgress(stream)
    stream.close()
    sink.account_update("a", "waiting", {"ready": 1})
    sink.event("a", "x")
    sink.close()


def test_make_progress_picks_plain_for_a_pipe() -> None:
    assert isinstance(make_progress(io.StringIO()), PlainProgress)


def test_counts_and_elapsed_formats() -> None:
    assert format_counts({"zeta": 1, "failed": 0, "ready": 2, "loading": 1}) == (
        "ready 2, loading 1, failed 0, zeta 1"
    )
    assert format_elapsed(12.9) == "00:12"
    assert format_elapsed(3723) == "1:02:03"


def test_live_display_on_a_forced_terminal() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100)
    ticks = iter(float(n) for n in range(1000))
    sink = LiveProgress(console, clock=lambda: next(ticks))
    sink.account_update("studio-prod", "waiting", {"ready": 2, "loading": 1, "failed": 0})
    sink.event("studio-prod", "analog-diffusion is ready")
    sink.account_update("studio-prod", "done", {"ready": 3, "loading": 0, "failed": 0})
    sink.close()
    sink.close()  # idempotent
    output = stream.getvalue()
    assert "studio-prod: analog-diffusion is ready" in output
    assert re.search(r"studio-prod  done  ready 3  loading 0  failed 0  00:0\d\n", output)
    assert "\x1b[" in output  # terminal control codes: it was a live display


def test_make_progress_interactive_on_a_string_stream() -> None:
    stream = io.StringIO()
    sink = make_progress(stream, interactive=True)
    assert isinstance(sink, LiveProgress)
    sink.account_update("a", "applying", {"sent": 1})
    sink.close()
    assert "a  applying  sent 1" in stream.getvalue()


def test_live_display_closed_before_use_prints_nothing() -> None:
    stream = io.StringIO()
    LiveProgress(Console(file=stream, force_terminal=True)).close()
    assert stream.getvalue() == ""
