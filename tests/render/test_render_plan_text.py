"""The terraform-style text plan: exact lines, symbols, summary and blockers."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from reconciler.core.diff import FieldChange
from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan
from reconciler.render.plan_text import field_line, summary_line, write_plan_text

ChangeFactory = Callable[..., ModelChange]


def render(plan: Plan) -> str:
    stream = io.StringIO()
    write_plan_text(plan, stream)
    return stream.getvalue()


def test_full_plan_renders_every_action_in_order(sample_plan: Plan) -> None:
    assert render(sample_plan).splitlines() == [
        "account gpu-box (enterprise)",
        "  - delete    old-experiment   declared absent",
        "  reported:",
        "    adopted  ready; not loaded by this tool, adopted with the declared spec",
        "",
        "account studio-prod (community)",
        "  + load      analog-diffusion   not on the account",
        '      + url = "wavymulder/Analog-Diffusion"',
        "  ! blocked   gone-model         declared absent; deleting is not possible through "
        "the community API",
        "  ~ replace   majicmix           the spec changed since the last apply",
        '      - model_name = "Majic"',
        '      url: "https://a/1" → "https://a/2"',
        "  ↻ reload    old-one            evicted from the inference server after idling",
        "  … wait      pending            a load is running",
        "  reported:",
        "    unmanaged-model  unmanaged; kept by prune: none",
        "",
        "Plan: 1 to load, 1 to reload, 1 to replace, 1 to delete, 1 to wait. "
        "1 blocked, 4 unchanged.",
    ]


def test_plain_ready_models_are_counted_not_listed(quiet_plan: Plan) -> None:
    assert render(quiet_plan).splitlines() == [
        "account studio-prod (community)",
        "  no changes",
        "",
        "No changes. Every account matches its manifests.",
    ]


def test_blocked_only_plan_is_not_called_matching(change: ChangeFactory) -> None:
    account = AccountPlan(
        account="a",
        api="community",
        live_fingerprint="x",
        changes=(change("m", Action.BLOCKED, "protected"),),
    )
    assert summary_line(Plan(accounts=(account,))) == "No changes. 1 blocked, 0 unchanged."


def test_blockers_notes_and_error_lines(change: ChangeFactory) -> None:
    account = AccountPlan(
        account="studio-prod",
        api="enterprise",
        live_fingerprint="x",
        changes=(change("m", Action.DELETE, "not declared; prune: all"),),
        blockers=("the plan deletes all 1 models of the account and loads none",),
        notes=("no ledger: spec changes (replace) and prune: managed are not detected",),
    )
    plan = Plan(
        accounts=(account,),
        blockers=("the plan deletes 9 models, more than --max-deletes 5",),
        ledger_available=False,
    )
    lines = render(plan).splitlines()
    assert lines[2:4] == [
        "  note: no ledger: spec changes (replace) and prune: managed are not detected",
        "  ! the plan deletes all 1 models of the account and loads none",
    ]
    assert lines[-2:] == [
        "Error: apply will refuse to run: the plan deletes 9 models, more than --max-deletes 5",
        "Error: apply will refuse to run: account studio-prod: the plan deletes all 1 models "
        "of the account and loads none",
    ]


def test_without_a_ledger_declared_ready_models_are_not_called_adopted(
    change: ChangeFactory,
) -> None:
    account = AccountPlan(
        account="a",
        api="community",
        live_fingerprint="x",
        changes=(change("m", Action.NOOP, "ready", managed=False),),
    )
    assert "reported:" not in render(Plan(accounts=(account,), ledger_available=False))
    assert "reported:" in render(Plan(accounts=(account,), ledger_available=True))


def test_absent_and_missing_is_not_reported(change: ChangeFactory) -> None:
    account = AccountPlan(
        account="a",
        api="enterprise",
        live_fingerprint="x",
        changes=(
            change(
                "m", Action.NOOP, "absent, as declared", condition=Condition.MISSING, managed=False
            ),
        ),
    )
    assert "  no changes" in render(Plan(accounts=(account,))).splitlines()


@pytest.mark.parametrize(
    ("field", "line"),
    [
        (FieldChange(path="url", new="x"), '+ url = "x"'),
        (FieldChange(path="url", old="x"), '- url = "x"'),
        (FieldChange(path="url", old='a"b', new="c"), 'url: "a\\"b" → "c"'),
    ],
)
def test_field_lines(field: FieldChange, line: str) -> None:
    assert field_line(field) == line


def test_empty_plan() -> None:
    assert render(Plan()) == "No changes. Every account matches its manifests.\n"
