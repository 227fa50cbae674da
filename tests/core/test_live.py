"""Live state from listings: one condition per model, unknown statuses reported, fingerprints."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api import wire
from reconciler.core.live import (
    STATUS_CONDITIONS,
    Condition,
    LiveModel,
    LiveState,
    community_live_state,
    condition_of_status,
    enterprise_live_state,
)

CATALOGUE = [
    wire.PublicModel(model_id="midjourney", status="model_ready"),
    wire.PublicModel(model_id="anything-v3", status="model_ready"),
]


def listed(**statuses: str) -> list[wire.PublicModel]:
    return [*CATALOGUE, *(wire.PublicModel(model_id=m, status=s) for m, s in statuses.items())]


def conditions(state: LiveState) -> dict[str, str]:
    return {model_id: model.condition.value for model_id, model in state.models.items()}


# -- the status table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "condition"),
    [
        ("model_ready", Condition.READY),
        ("model_loading", Condition.LOADING),
        ("model_failed", Condition.FAILED),
        ("processing", Condition.LOADING),
        ("deploying_model", Condition.LOADING),
        ("trained_model_uploading", Condition.LOADING),
        (" Model_Ready ", Condition.READY),
        ("model_sleeping", Condition.UNKNOWN),
        ("", Condition.UNKNOWN),
    ],
)
def test_condition_of_status(status: str, condition: Condition) -> None:
    assert condition_of_status(status) is condition


def test_every_status_in_the_table_is_lower_case_and_known() -> None:
    assert all(s == s.strip().lower() for s in STATUS_CONDITIONS)
    assert Condition.UNKNOWN not in STATUS_CONDITIONS.values()


# -- community ---------------------------------------------------------------------------------


def test_community_conditions() -> None:
    state = community_live_state(
        "studio",
        ["ready", "loading", "failed", "evicted"],
        listed(ready="model_ready", loading="model_loading", failed="model_failed"),
    )
    assert state.account == "studio"
    assert conditions(state) == {
        "evicted": "evicted",
        "failed": "failed",
        "loading": "loading",
        "ready": "ready",
    }
    assert state.models["ready"].status == "model_ready"
    assert state.models["evicted"].status == ""


def test_owned_but_not_listed_is_evicted() -> None:
    state = community_live_state("studio", ["gone"], CATALOGUE)
    assert state.condition("gone") is Condition.EVICTED


def test_the_public_catalogue_is_not_the_accounts() -> None:
    state = community_live_state("studio", [], listed(stranger="model_ready"))
    assert dict(state.models) == {}
    assert state.condition("midjourney") is Condition.MISSING


def test_an_unknown_status_is_reported_not_a_crash() -> None:
    state = community_live_state(
        "studio", ["odd", "fine"], listed(odd="model_hibernating", fine="model_ready")
    )
    assert state.condition("odd") is Condition.UNKNOWN
    assert state.unknown_statuses() == [LiveModel("odd", Condition.UNKNOWN, "model_hibernating")]


def test_finetune_list_items_may_be_objects_carrying_model_id() -> None:
    response = wire.FinetuneListResponse.model_validate(
        {"status": "success", "data": ["plain", {"model_id": "object", "extra": 1}]}
    )
    state = community_live_state("studio", response.model_ids(), listed(object="model_ready"))
    assert conditions(state) == {"object": "ready", "plain": "evicted"}


def test_owned_ids_may_repeat() -> None:
    state = community_live_state("studio", ["a", "a"], listed(a="model_ready"))
    assert conditions(state) == {"a": "ready"}


# -- enterprise --------------------------------------------------------------------------------


def test_enterprise_conditions_from_every_list() -> None:
    listing = wire.GetAllModelsResponse.model_validate(
        {
            "status": "success",
            "models": [{"model_id": "base", "load_data": "01/25/2023 11:52:22"}],
            "lora_models": [{"model_id": "lora"}],
            "embeddings_models": [{"model_id": "emb"}],
        }
    )
    state = enterprise_live_state("farm", listing)
    assert conditions(state) == {"base": "ready", "emb": "ready", "lora": "ready"}
    assert state.models["base"].loaded_at == "01/25/2023 11:52:22"
    assert state.unknown_statuses() == []


def test_an_empty_enterprise_server() -> None:
    state = enterprise_live_state("farm", wire.GetAllModelsResponse(status="success"))
    assert dict(state.models) == {}


# -- lookups -----------------------------------------------------------------------------------


def test_condition_lookup() -> None:
    state = community_live_state("studio", ["a", "b"], listed(a="model_ready"))
    assert state.condition("a") is Condition.READY
    assert state.condition("b") is Condition.EVICTED
    assert state.condition("nope") is Condition.MISSING
    assert state.condition("a", declared=False) is Condition.UNMANAGED
    assert state.condition("b", declared=False) is Condition.UNMANAGED
    assert state.condition("nope", declared=False) is Condition.MISSING


# -- fingerprints ------------------------------------------------------------------------------


def test_fingerprint_shape_and_stability() -> None:
    one = community_live_state("s", ["a", "b"], listed(a="model_ready", b="model_loading"))
    two = community_live_state(
        "s", ["b", "a"], list(reversed(listed(a="model_ready", b="model_loading")))
    )
    assert one.fingerprint == two.fingerprint
    assert one.fingerprint.startswith("sha256:")
    assert len(one.fingerprint) == len("sha256:") + 16


@pytest.mark.parametrize(
    "changed",
    [
        listed(a="model_ready", b="model_ready"),  # b finished loading
        listed(a="model_ready"),  # b evicted
        listed(a="model_ready", b="model_failed"),  # b failed
    ],
)
def test_fingerprint_changes_when_a_condition_changes(changed: list[wire.PublicModel]) -> None:
    before = community_live_state("s", ["a", "b"], listed(a="model_ready", b="model_loading"))
    after = community_live_state("s", ["a", "b"], changed)
    assert before.fingerprint != after.fingerprint


def test_fingerprint_changes_when_a_model_appears() -> None:
    before = community_live_state("s", ["a"], listed(a="model_ready"))
    after = community_live_state("s", ["a", "b"], listed(a="model_ready"))
    assert before.fingerprint != after.fingerprint


STATUSES = st.sampled_from(["model_ready", "model_loading", "model_failed", "odd"])


@settings(max_examples=50)
@given(
    owned=st.dictionaries(st.text(min_size=1, max_size=8), st.none() | STATUSES, max_size=12),
    data=st.data(),
)
def test_fingerprint_ignores_order(owned: dict[str, str | None], data: st.DataObject) -> None:
    items = [wire.PublicModel(model_id=m, status=s) for m, s in owned.items() if s is not None]
    ids = list(owned)
    shuffled_ids = data.draw(st.permutations(ids))
    shuffled_items = data.draw(st.permutations([*CATALOGUE, *items]))
    one = community_live_state("s", ids, [*CATALOGUE, *items])
    two = community_live_state("s", shuffled_ids, shuffled_items)
    assert one.fingerprint == two.fingerprint
    assert conditions(one) == conditions(two)
    assert set(one.models) == set(owned)
