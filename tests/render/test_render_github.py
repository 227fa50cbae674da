"""``-o github`` and the PR comment: escaping, masks, the annotation cap, outputs, and golden
files of the comment and the job summaries, including their cuts under the size limits.

Set ``RECONCILER_UPDATE_GOLDEN=1`` to rewrite the golden files after a deliberate change.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan
from reconciler.core.report import AccountReport, ApplyReport, ItemReport, Outcome
from reconciler.errors import ManifestProblem
from reconciler.render.comment import (
    COMMENT_LIMIT,
    cut_markdown,
    drift_body,
    drift_fingerprint_of,
    read_marker,
    render_plan_comment,
)
from reconciler.render.github import (
    ANNOTATION_CAP,
    Annotation,
    Section,
    apply_summary,
    capped,
    escape_data,
    escape_property,
    fit_summary,
    mask_commands,
    output_text,
    plan_annotations,
    plan_outputs,
    plan_summary,
    problem_annotations,
)

GOLDEN = Path(__file__).parent / "golden"
HASH = "sha256:" + "ab" * 32


def change(model_id: str, action: Action, reason: str, **fields: Any) -> ModelChange:
    """A declared, managed, ready change unless told otherwise."""
    values: dict[str, Any] = {"condition": Condition.READY, "declared": True, "managed": True}
    return ModelChange(model_id=model_id, action=action, reason=reason, **{**values, **fields})


def golden(name: str, text: str) -> None:
    """Compare ``text`` with ``golden/NAME``; rewrite it with RECONCILER_UPDATE_GOLDEN=1."""
    path = GOLDEN / name
    if os.environ.get("RECONCILER_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def big_plan(models: int, account: str = "studio-prod") -> Plan:
    changes = tuple(
        change(
            f"model-{i:05d}",
            Action.LOAD,
            "not on the account",
            condition=Condition.MISSING,
            origin=f"manifests/prod.yaml:{10 + i}",
        )
        for i in range(models)
    )
    return Plan(
        accounts=(
            AccountPlan(account=account, api="community", live_fingerprint="x", changes=changes),
        )
    )


# -- workflow commands ------------------------------------------------------------------------


def test_escaping_follows_the_runner() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("C:\\a,b%\n") == "C%3A\\a%2Cb%25%0A"


def test_masks_each_value_and_each_line() -> None:
    assert mask_commands(["sk-1", "", " sk-1 ", "a\nb%"]) == [
        "::add-mask::sk-1",
        "::add-mask::a%0Ab%25",
        "::add-mask::a",
        "::add-mask::b%25",
    ]


def test_annotation_is_escaped_in_message_and_properties() -> None:
    annotation = Annotation("blocked", "a: b,\nc", "dir,x/m:1.yaml", 12, 3, "t: x")
    assert annotation.command() == (
        "::error file=dir%2Cx/m%3A1.yaml,line=12,col=3,title=t%3A x::a: b,\\nc"
    )


def test_annotations_are_capped_per_kind() -> None:
    blocked = [Annotation("blocked", f"b{i}") for i in range(25)]
    invalid = [Annotation("invalid-manifest", f"i{i}") for i in range(3)]
    shown, omitted = capped([*blocked, *invalid])
    assert [a.message for a in shown] == [f"b{i}" for i in range(10)] + ["i0", "i1", "i2"]
    assert omitted == {"blocked": 15}
    assert ANNOTATION_CAP == 10


def test_blocked_models_are_annotated_at_their_declaration() -> None:
    plan = big_plan(0).model_copy(
        update={
            "accounts": (
                AccountPlan(
                    account="studio",
                    api="community",
                    live_fingerprint="x",
                    changes=(change("gone", Action.BLOCKED, "protected", origin="m/prod.yaml:7"),),
                ),
            )
        }
    )
    assert [a.command() for a in plan_annotations(plan)] == [
        "::error file=m/prod.yaml,line=7,title=reconciler%3A blocked::studio/gone: protected"
    ]


def test_manifest_problems_are_annotated_at_file_line_column() -> None:
    problem = ManifestProblem("m/prod.yaml", 4, 5, "models[0].url", "field required")
    (annotation,) = problem_annotations([problem])
    assert annotation.command().startswith("::error file=m/prod.yaml,line=4,col=5,")


# -- outputs ----------------------------------------------------------------------------------


def test_outputs_use_a_random_heredoc_for_multiline_values(sample_plan: Plan) -> None:
    outputs = plan_outputs(sample_plan, HASH, "", "/tmp/plan.json")
    assert outputs["changes"] == "true"
    assert outputs["to_delete"] == "gpu-box/old-experiment"
    text = output_text({"one": "x", "many": "a\nb"}, token=lambda: "T")
    assert text == "one=x\nmany<<ghadelimiter_T\na\nb\nghadelimiter_T\n"
    forged = output_text({"many": "a\nghadelimiter_T\nb"}, token=lambda: "T")
    delimiter = forged.split("\n", 1)[0].split("<<", 1)[1]
    assert delimiter != "ghadelimiter_T" and forged.endswith(f"\n{delimiter}\n")


# -- the comment ------------------------------------------------------------------------------


def test_comment_golden(sample_plan: Plan) -> None:
    body = render_plan_comment(sample_plan, HASH)
    assert read_marker(body) == {"v": 1, "kind": "plan", "plan_hash": HASH}
    golden("comment.md", body)


def test_comment_is_cut_on_lines_with_fences_and_details_closed() -> None:
    body = render_plan_comment(big_plan(3000), HASH)
    assert len(body) <= COMMENT_LIMIT
    assert body.startswith("<!-- reconciler ")
    assert "cut to fit" in body
    fences = [line for line in body.splitlines() if re.match(r"^`{3,}", line)]
    assert len(fences) % 2 == 0  # every opened fence is closed
    assert body.count("<details>") == body.count("</details>")
    golden("comment-cut.md", render_plan_comment(big_plan(40), HASH, limit=1800))


def test_cut_markdown_never_splits_a_line() -> None:
    text = "".join(f"line {i}\n" for i in range(100))
    cut = cut_markdown(text, 120, "NOTE")
    assert len(cut) <= 120
    assert all(line.startswith("line ") or line in ("", "NOTE") for line in cut.split("\n"))


# -- the job summaries ------------------------------------------------------------------------


def test_plan_summary_golden(sample_plan: Plan) -> None:
    golden("summary-plan.md", plan_summary(sample_plan, HASH, {"blocked": 2}, ["comment: created"]))


def test_apply_summary_golden(sample_plan: Plan) -> None:
    report = ApplyReport(
        accounts=(
            AccountReport(
                account="gpu-box",
                api="enterprise",
                converged=False,
                failure_reason="apply-failed",
                message="broken: model_failed",
                items=(
                    ItemReport(
                        model_id="broken",
                        action=Action.LOAD,
                        outcome=Outcome.FAILED,
                        condition=Condition.FAILED,
                        failure_reason="apply-failed",
                        message="model_failed",
                    ),
                ),
            ),
            AccountReport(account="studio-prod", api="community", converged=True),
        )
    )
    heartbeat = "Heartbeat: reconciler apply ran at 2026-12-01T00:00:00Z: 1 of 2 converged."
    golden("summary-apply.md", apply_summary(report, sample_plan, {}, heartbeat))


def test_summary_drops_whole_sections_to_stay_under_the_limit() -> None:
    plans = Plan(accounts=tuple(big_plan(2000, f"acct-{i}").accounts[0] for i in range(12)))
    summary = plan_summary(plans, HASH, {})
    assert len(summary.encode()) < 1024 * 1024
    assert summary.startswith("## Reconciler plan")
    assert "left out to keep this summary under 1 MiB" in summary
    assert summary.count("<details>") == summary.count("</details>")
    small = fit_summary([Section("head\n", keep=True), Section("a" * 50), Section("b\n")], 250)
    assert small == "head\nb\n\n_1 section left out to keep this summary under 1 MiB._\n"


def test_drift_body_carries_marker_and_failure_fingerprint() -> None:
    report = AccountReport(
        account="studio", api="community", converged=False, failure_reason="apply-failed"
    )
    body = drift_body(report, "https://github.test/run/1")
    assert read_marker(body) == {"v": 1, "kind": "drift", "account": "studio"}
    assert drift_fingerprint_of(body) == drift_fingerprint_of(drift_body(report, "other"))
    moved = report.model_copy(update={"failure_reason": "not-converged"})
    assert drift_fingerprint_of(body) != drift_fingerprint_of(drift_body(moved, ""))


@pytest.mark.parametrize("limit", [300, 1000, 5000])
def test_cut_comment_respects_any_limit(limit: int) -> None:
    assert len(render_plan_comment(big_plan(200), HASH, limit=limit)) <= limit
