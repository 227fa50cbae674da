"""The apply report as text and JSON."""

from __future__ import annotations

import io
import json

import pytest

from reconciler.core.live import Condition
from reconciler.core.plan import Action
from reconciler.core.report import AccountReport, ApplyReport, ItemReport, Outcome
from reconciler.render.report import write_report_json, write_report_text


@pytest.fixture
def report() -> ApplyReport:
    studio = AccountReport(
        account="studio-prod",
        api="community",
        converged=True,
        elapsed_seconds=12.34,
        items=(
            ItemReport(
                model_id="analog-diffusion",
                action=Action.LOAD,
                outcome=Outcome.DONE,
                condition=Condition.READY,
            ),
            ItemReport(
                model_id="ready-one",
                action=Action.NOOP,
                outcome=Outcome.UNCHANGED,
                condition=Condition.READY,
            ),
        ),
    )
    gpu = AccountReport(
        account="gpu-box",
        api="enterprise",
        converged=False,
        failure_reason="apply-failed",
        message="1 model failed to load",
        elapsed_seconds=40.0,
        items=(
            ItemReport(
                model_id="broken",
                action=Action.REPLACE,
                outcome=Outcome.FAILED,
                condition=Condition.FAILED,
                failure_reason="apply-failed",
                message="model_failed: bad url",
            ),
            ItemReport(
                model_id="sdxl",
                action=Action.RELOAD,
                outcome=Outcome.DONE,
                condition=Condition.READY,
            ),
        ),
        remaining=("+ load broken",),
    )
    return ApplyReport(accounts=(gpu, studio))


def test_text(report: ApplyReport) -> None:
    stream = io.StringIO()
    write_report_text(report, stream)
    assert stream.getvalue().splitlines() == [
        "✗ gpu-box not converged (apply-failed): 1 model failed to load",
        "  ~ replace  broken  failed  apply-failed: model_failed: bad url",
        "  ↻ reload   sdxl    done",
        "  remaining: + load broken",
        "✓ studio-prod converged in 12.3s",
        "  + load     analog-diffusion  done",
        "Apply failed: 1 of 2 accounts did not converge (apply-failed).",
    ]


def test_text_when_all_converged_without_waiting() -> None:
    report = ApplyReport(
        accounts=(AccountReport(account="a", api="community", converged=True),), waited=False
    )
    stream = io.StringIO()
    write_report_text(report, stream)
    assert stream.getvalue().splitlines() == [
        "✓ a converged in 0.0s",
        "Apply complete: 1 account converged. Requests were sent without waiting (--no-wait).",
    ]


def test_json(report: ApplyReport) -> None:
    stream = io.StringIO()
    write_report_json(report, stream)
    document = json.loads(stream.getvalue())
    assert document["ok"] is False
    assert document["failure_reason"] == "apply-failed"
    assert document["format_version"] == 1
    assert document["accounts"][0]["items"][0]["failure_reason"] == "apply-failed"
    assert list(document) == sorted(document)
    assert (
        ApplyReport.model_validate(
            {k: v for k, v in document.items() if k not in ("ok", "failure_reason")}
        )
        == report
    )
