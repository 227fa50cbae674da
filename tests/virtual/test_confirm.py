"""``apply`` on a terminal asks first (issue 12), as Terraform does: only ``yes`` applies;
anything else stops the run with exit 1 before a request is sent. ``--auto-approve`` skips
the question, and without a terminal (CI, cron, pipes) apply proceeds as it always did.

The terminal is a real pseudo-terminal: the command (in-process, on virtual time) runs with
the pty as its standard input, and the test types the answer into the pty's other end. That
``python -m reconciler`` is the same command is ``tests/e2e/test_e2e_entrypoints.py``'s job.
"""

from __future__ import annotations

import os
import pty
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ..e2e.e2e_support import Result, World, community_model

QUESTION = "Apply these changes to 1 account? Only 'yes' is accepted:"
LOADS = "v3/load_model"


@contextmanager
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal: (the end the test types into, the end the command reads)."""
    typed, tty = pty.openpty()
    try:
        yield typed, tty
    finally:
        os.close(typed)
        os.close(tty)


def apply_on_terminal(world: World, answer: str | None, *extra: str) -> Result:
    """``reconciler apply`` with a terminal as stdin; ``answer`` typed into it (and then
    end-of-file, so that a command that asks again would not hang)."""
    with terminal() as (typed, tty):
        if answer is not None:
            os.write(typed, answer.encode() + b"\n")
        os.write(typed, b"\x04")  # Ctrl-D: end of input on a terminal
        with (
            open(tty, encoding="utf-8", closefd=False) as stdin,
            pytest.MonkeyPatch.context() as patch,
        ):
            patch.setattr(sys, "stdin", stdin)
            return world.apply(*extra)


def test_yes_applies_after_showing_the_plan(world: World) -> None:
    world.manifest("studio", [community_model("analog")])
    result = apply_on_terminal(world, "yes")
    assert result.code == 0, result.out + result.err
    plan_at = result.out.index("+ load")
    assert result.out.index(QUESTION) > plan_at  # the plan first, then the question
    assert "Apply complete: 1 account converged." in result.out
    assert world.statuses("studio") == {"analog": "model_ready"}


@pytest.mark.parametrize("answer", ["no", "y", "YES", "yes please", "", None])
def test_anything_but_yes_sends_nothing(world: World, answer: str | None) -> None:
    world.manifest("studio", [community_model("analog")])
    result = apply_on_terminal(world, answer)
    assert result.code == 1, result.out + result.err
    assert QUESTION in result.out
    assert "error: apply cancelled: the answer was not 'yes'; nothing was sent" in result.err
    assert world.mutations() == {}
    assert world.statuses("studio") == {}


def test_auto_approve_does_not_ask(world: World) -> None:
    world.manifest("studio", [community_model("analog")])
    result = apply_on_terminal(world, None, "--auto-approve")
    assert result.code == 0, result.out + result.err
    assert "Only 'yes'" not in result.out + result.err
    assert world.count(LOADS) == 1


def test_json_output_asks_on_stderr_and_keeps_stdout_a_document(world: World) -> None:
    world.manifest("studio", [community_model("analog")])
    result = apply_on_terminal(world, "yes", "-o", "json")
    assert result.code == 0, result.err
    assert QUESTION in result.err
    assert "+ load" in result.err
    assert result.out.startswith("{")


def test_nothing_to_send_asks_nothing(world: World) -> None:
    world.manifest("studio", [])
    result = apply_on_terminal(world, None)
    assert result.code == 0, result.out + result.err
    assert "Only 'yes'" not in result.out


def test_without_a_terminal_apply_does_not_ask(world: World) -> None:
    world.manifest("studio", [community_model("analog")])
    result = world.apply()  # in-process: stdin is not a terminal
    assert result.code == 0, result.text
    assert "Only 'yes'" not in result.text
    assert world.count(LOADS) == 1


def test_a_saved_plan_was_reviewed_and_is_not_asked_about(world: World) -> None:
    world.manifest("studio", [community_model("analog")])
    plan_file = world.root / "plan.json"
    assert world.plan("--out", str(plan_file)).code == 0
    result = apply_on_terminal(world, None, str(plan_file))
    assert result.code == 0, result.out + result.err
    assert "Only 'yes'" not in result.out
