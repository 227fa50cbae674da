"""The renderer tables: one per result type, looked up by ``-o``, one signature."""

from __future__ import annotations

import io
import json

from reconciler.core.plan import Plan
from reconciler.core.report import ApplyReport
from reconciler.errors import ManifestProblem
from reconciler.render.diagnostics import Validation
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.outputs import (
    PLAN_RENDERERS,
    REPORT_RENDERERS,
    STATUS_RENDERERS,
    VALIDATION_RENDERERS,
    Streams,
)
from reconciler.render.plan_json import plan_json_text
from reconciler.render.plan_text import write_plan_text
from reconciler.render.report import write_report_text


def streams() -> Streams:
    return Streams(io.StringIO(), io.StringIO())


def text(stream: object) -> str:
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


def test_the_choices_of_each_command_in_help_order() -> None:
    assert list(PLAN_RENDERERS) == ["json", "markdown", "text", "github"]
    assert list(REPORT_RENDERERS) == ["json", "text", "github"]
    assert list(STATUS_RENDERERS) == ["text", "json"]
    assert list(VALIDATION_RENDERERS) == ["text", "json", "github"]


def test_plan_renderers_write_their_format_to_stdout(sample_plan: Plan) -> None:
    expected_text = io.StringIO()
    write_plan_text(sample_plan, expected_text)
    expected = {
        "json": plan_json_text(sample_plan),
        "markdown": render_plan_markdown(sample_plan),
        "text": expected_text.getvalue(),
        "github": expected_text.getvalue(),  # the job log shows the text form
    }
    for output, render in PLAN_RENDERERS.items():
        written = streams()
        render(sample_plan, written)
        assert (text(written.out), text(written.err)) == (expected[output], ""), output


def test_report_renderers() -> None:
    report = ApplyReport(waited=False, refused="the plan changed", refused_reason="plan-changed")
    expected_text = io.StringIO()
    write_report_text(report, expected_text)
    for output in ("text", "github"):
        written = streams()
        REPORT_RENDERERS[output](report, written)
        assert text(written.out) == expected_text.getvalue()
    written = streams()
    REPORT_RENDERERS["json"](report, written)
    assert json.loads(text(written.out))["failure_reason"] == "plan-changed"


def test_status_renderers_of_no_accounts() -> None:
    written = streams()
    STATUS_RENDERERS["json"]((), written)
    assert json.loads(text(written.out)) == {"format_version": 1, "accounts": []}
    written = streams()
    STATUS_RENDERERS["text"]((), written)
    assert (text(written.out), text(written.err)) == ("", "")


def test_validation_text_puts_problems_on_stderr_and_the_verdict_on_stdout() -> None:
    problem = ManifestProblem("m.yaml", 3, 1, "models[0].url", "is required")
    for output in ("text", "github"):
        written = streams()
        VALIDATION_RENDERERS[output](Validation(problems=(problem,)), written)
        assert text(written.out) == ""
        assert text(written.err) == "m.yaml:3:1: models[0].url: is required\n1 problem found\n"
        written = streams()
        VALIDATION_RENDERERS[output](Validation(accounts=("a", "b")), written)
        assert (text(written.out), text(written.err)) == ("2 accounts valid: a, b\n", "")


def test_validation_json_is_one_document_on_stdout() -> None:
    problem = ManifestProblem("m.yaml", 3, 1, "", "bad")
    written = streams()
    VALIDATION_RENDERERS["json"](Validation(problems=(problem,)), written)
    document = json.loads(text(written.out))
    assert (document["valid"], document["accounts"], len(document["problems"])) == (False, [], 1)
    assert text(written.err) == ""
