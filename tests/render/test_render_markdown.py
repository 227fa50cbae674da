"""The PR-comment markdown: marker, title, tables, details, blockers and truncation."""

from __future__ import annotations

from collections.abc import Callable

from reconciler.core.diff import FieldChange
from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan
from reconciler.render.markdown import plan_marker, render_plan_markdown

ChangeFactory = Callable[..., ModelChange]


def test_marker_title_and_tables(sample_plan: Plan) -> None:
    text = render_plan_markdown(sample_plan)
    lines = text.splitlines()
    assert lines[0] == f"<!-- reconciler-plan: {sample_plan.digest()} -->"
    assert lines[1] == (
        "### Reconciler plan: 1 to load, 1 to reload, 1 to replace, 1 to delete, 1 to wait"
    )
    assert "1 blocked, 4 unchanged." in lines
    assert "#### `gpu-box` (enterprise)" in lines
    assert "| | model | action | reason |" in lines
    assert "| `+` | `analog-diffusion` | load | not on the account |" in lines
    assert "| `↻` | `old-one` | reload | evicted from the inference server after idling |" in lines
    assert "|  | `unmanaged-model` | reported | unmanaged; kept by prune: none |" in lines
    assert "| `-` | `old-experiment` | delete | declared absent |" in lines
    assert not any("ready-one" in line for line in lines)  # plain ready: counted, not listed
    assert text.index("#### `gpu-box`") < text.index("#### `studio-prod`")


def test_field_changes_are_folded(sample_plan: Plan) -> None:
    text = render_plan_markdown(sample_plan)
    assert "<details><summary>Field changes of 2 models</summary>" in text
    assert (
        '```\n+ analog-diffusion\n    + url = "wavymulder/Analog-Diffusion"\n~ majicmix\n' in text
    )
    assert '    url: "https://a/1" → "https://a/2"\n```' in text


def test_no_changes(quiet_plan: Plan) -> None:
    text = render_plan_markdown(quiet_plan)
    assert "### Reconciler plan: no changes\n\nEvery account matches its manifests." in text
    assert "No changes.\n" in text
    assert "<details>" not in text


def test_blockers_are_a_warning(change: ChangeFactory) -> None:
    account = AccountPlan(
        account="a",
        api="enterprise",
        live_fingerprint="x",
        changes=(change("m", Action.DELETE, "not declared; prune: all"),),
        blockers=("would leave the account empty",),
    )
    plan = Plan(accounts=(account,), blockers=("too many | deletes",), ledger_available=False)
    text = render_plan_markdown(plan)
    assert "> [!WARNING]\n> **Apply will refuse to run:**\n> - too many \\| deletes\n" in text
    assert "> - account a: would leave the account empty\n" in text
    assert "**Blocked:** would leave the account empty" in text
    assert "> [!NOTE]\n> No ledger was available" in text


def test_cells_are_escaped(change: ChangeFactory) -> None:
    account = AccountPlan(
        account="a",
        api="community",
        live_fingerprint="x",
        changes=(
            change(
                "we|ird`id",
                Action.NOOP,
                "a <b>\nreason | here",
                declared=False,
                managed=False,
                condition=Condition.UNMANAGED,
            ),
        ),
    )
    text = render_plan_markdown(Plan(accounts=(account,)))
    # Issue 14: the newline is shown as a visible backslash-n, not folded into a space.
    assert "|  | ``we\\|ird`id`` | reported | a &lt;b&gt;\\\\nreason \\| here |" in text


def test_huge_plan_stays_under_the_limit_and_keeps_the_marker(change: ChangeFactory) -> None:
    changes = tuple(
        change(
            f"model-{index:05d}",
            Action.LOAD,
            "not on the account",
            condition=Condition.MISSING,
            managed=False,
            fields=(FieldChange(path="url", new=f"https://example.com/{index}"),),
        )
        for index in range(5_000)
    )
    account = AccountPlan(account="big", api="community", live_fingerprint="x", changes=changes)
    plan = Plan(accounts=(account,))
    text = render_plan_markdown(plan)
    assert len(text) <= 65_000
    assert text.startswith(plan_marker(plan) + "\n### Reconciler plan: 5000 to load,")
    shown = sum(1 for line in text.splitlines() if line.startswith("| `+` |"))
    assert 0 < shown < 5_000
    assert f"_… {5_000 - shown} more changes omitted" in text
    assert "<details>" not in text
    assert len(render_plan_markdown(plan, max_chars=10_000)) <= 10_000


def test_small_plan_is_not_truncated(sample_plan: Plan) -> None:
    assert "omitted" not in render_plan_markdown(sample_plan)
