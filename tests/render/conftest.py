"""Hand-built plans and reports shared by the renderer tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reconciler.core.diff import FieldChange
from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan

ChangeFactory = Callable[..., ModelChange]


def change(model_id: str, action: Action, reason: str, **fields: Any) -> ModelChange:
    """A declared, managed, ready change unless told otherwise."""
    values: dict[str, Any] = {
        "condition": Condition.READY,
        "declared": True,
        "managed": True,
    }
    values.update(fields)
    return ModelChange(model_id=model_id, action=action, reason=reason, **values)


@pytest.fixture(name="change")
def change_fixture() -> ChangeFactory:
    """``change(model_id, action, reason, **fields)``: a declared, managed, ready change."""
    return change


@pytest.fixture
def sample_plan() -> Plan:
    """Two accounts with every action, a reported unmanaged and an adopted model."""
    studio = AccountPlan(
        account="studio-prod",
        api="community",
        live_fingerprint="sha256:1111",
        changes=(
            change(
                "analog-diffusion",
                Action.LOAD,
                "not on the account",
                condition=Condition.MISSING,
                managed=False,
                spec={"url": "wavymulder/Analog-Diffusion"},
                fields=(FieldChange(path="url", new="wavymulder/Analog-Diffusion"),),
            ),
            change(
                "gone-model",
                Action.BLOCKED,
                "declared absent; deleting is not possible through the community API",
            ),
            change(
                "majicmix",
                Action.REPLACE,
                "the spec changed since the last apply",
                fields=(
                    FieldChange(path="model_name", old="Majic", new=None),
                    FieldChange(path="url", old="https://a/1", new="https://a/2"),
                ),
            ),
            change(
                "old-one",
                Action.RELOAD,
                "evicted from the inference server after idling",
                condition=Condition.EVICTED,
            ),
            change("pending", Action.WAIT, "a load is running", condition=Condition.LOADING),
            change("ready-one", Action.NOOP, "ready"),
            change(
                "unmanaged-model",
                Action.NOOP,
                "unmanaged; kept by prune: none",
                condition=Condition.UNMANAGED,
                declared=False,
                managed=False,
            ),
        ),
    )
    gpu = AccountPlan(
        account="gpu-box",
        api="enterprise",
        live_fingerprint="sha256:2222",
        changes=(
            change(
                "adopted",
                Action.NOOP,
                "ready; not loaded by this tool, adopted with the declared spec",
                managed=False,
            ),
            change("old-experiment", Action.DELETE, "declared absent"),
            change("sdxl", Action.NOOP, "ready"),
        ),
    )
    return Plan(accounts=(gpu, studio))


@pytest.fixture
def quiet_plan() -> Plan:
    """One account where everything is ready."""
    account = AccountPlan(
        account="studio-prod",
        api="community",
        live_fingerprint="sha256:1111",
        changes=(change("a", Action.NOOP, "ready"), change("b", Action.NOOP, "ready")),
    )
    return Plan(accounts=(account,))
