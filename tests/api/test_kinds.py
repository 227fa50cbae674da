"""The capability table of the two APIs: what each kind says it can do (issue 13).

The planner, apply, the client and the emulator decide by these answers, so a wrong entry here
changes behaviour everywhere at once; these tests pin the table to api-spec §2.
"""

from __future__ import annotations

import json

import pytest

from reconciler.api import wire
from reconciler.api.kinds import API_KINDS, CAPABILITIES, ApiKind
from reconciler.core.plan import AccountPlan
from reconciler.emulator.handlers import ENDPOINTS
from reconciler.manifest.models import ACCOUNT_ADAPTER


def test_the_kinds_are_spelled_as_manifests_spell_them() -> None:
    assert API_KINDS == ("community", "enterprise")
    for kind in ApiKind:
        assert kind == kind.value
        assert str(kind) == f"{kind}" == kind.value
        assert json.dumps({"api": kind}) == json.dumps({"api": kind.value})


def test_every_kind_has_its_own_capabilities() -> None:
    assert set(CAPABILITIES) == set(ApiKind)
    for kind in ApiKind:
        assert kind.caps is CAPABILITIES[kind]
        assert kind.caps.kind is kind


def test_community_lists_two_endpoints_reloads_and_cannot_delete() -> None:
    caps = ApiKind.COMMUNITY.caps
    assert caps.list_endpoints == (wire.FINETUNE_LIST, wire.MODEL_LIST)
    assert (caps.load_endpoint, caps.load_request) == (wire.LOAD_MODEL, wire.CommunityLoadRequest)
    assert caps.reload_endpoint == wire.MODEL_RELOAD
    assert not caps.reload_is_load
    assert caps.delete_endpoint is None
    assert not caps.can_delete
    assert caps.verify_endpoint is None
    assert caps.lists_loading  # model_list shows model_loading
    assert caps.evicts  # idle models leave the inference server (api-spec §2.4)
    assert dict(caps.load_defaults) == wire.COMMUNITY_LOAD_DEFAULTS
    assert caps.named_after_id == "model_name"


def test_enterprise_lists_once_loaded_reloads_by_loading_and_deletes() -> None:
    caps = ApiKind.ENTERPRISE.caps
    assert caps.list_endpoints == (wire.ENTERPRISE_GET_ALL_MODELS,)
    assert (caps.load_endpoint, caps.load_request) == (
        wire.ENTERPRISE_LOAD_MODEL,
        wire.EnterpriseLoadRequest,
    )
    assert caps.reload_endpoint is None
    assert caps.reload_is_load
    assert caps.delete_endpoint == wire.ENTERPRISE_DELETE_MODEL
    assert caps.can_delete
    assert caps.verify_endpoint == wire.ENTERPRISE_VERIFY_MODEL
    assert not caps.lists_loading  # get_all_models shows a model only once loaded
    assert not caps.evicts
    assert dict(caps.load_defaults) == wire.ENTERPRISE_LOAD_DEFAULTS
    assert caps.named_after_id is None


@pytest.mark.parametrize("kind", list(ApiKind))
def test_each_operation_is_an_endpoint_of_its_own_kind(kind: ApiKind) -> None:
    caps = kind.caps
    used = [*caps.list_endpoints, caps.load_endpoint]
    used += [e for e in (caps.reload_endpoint, caps.delete_endpoint, caps.verify_endpoint) if e]
    assert set(used) <= caps.endpoints


def test_the_kinds_split_the_emulated_endpoints_between_them() -> None:
    community, enterprise = ApiKind.COMMUNITY.caps.endpoints, ApiKind.ENTERPRISE.caps.endpoints
    assert not community & enterprise
    assert community | enterprise == set(ENDPOINTS)


@pytest.mark.parametrize("spelled", API_KINDS)
def test_a_manifest_api_reads_as_the_kind_and_writes_back_as_its_string(spelled: str) -> None:
    document = {"version": 1, "account": "a", "api": spelled, "key_env": "MODELSLAB_KEY_A"}
    account = ACCOUNT_ADAPTER.validate_python(document)
    assert account.api is ApiKind(spelled)
    assert account.model_dump(mode="json")["api"] == spelled
    plan = AccountPlan(account="a", api=account.api, live_fingerprint="sha256:x")
    assert json.loads(plan.model_dump_json())["api"] == spelled
    assert AccountPlan.model_validate_json(plan.model_dump_json()).api is account.api
