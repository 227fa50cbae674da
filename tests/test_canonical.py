"""The canonical text of spec hashes and plan digests is ``json.dumps``'s, whoever writes it.

Ledgers hold spec hashes and pull-request comments hold plan digests made by earlier versions:
a text that changed would make every recorded model look changed and every reviewed plan stale.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.api.kinds import ApiKind
from reconciler.canonical import canonical_json
from reconciler.core.diff import FieldChange
from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan
from reconciler.manifest.models import spec_hash
from reconciler.render.plan_json import plan_document

# What orjson and json.dumps write differently unless escaped: quotes, backslashes, controls,
# DEL, non-ASCII, a lone surrogate (orjson refuses it), beyond the basic plane.
_AWKWARD = st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "é", "\u2028", "\ud800", "😀"])
_TEXT = st.text(st.characters() | _AWKWARD)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner) | st.dictionaries(_TEXT, inner),
    max_leaves=20,
)


@dataclass
class _Point:
    x: int
    y: int


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@given(_VALUES)
def test_the_canonical_text_is_json_dumps_for_any_value_without_floats(value: Any) -> None:
    assert canonical_json(value) == _dumps(value)


def test_what_orjson_refuses_is_written_by_json_dumps() -> None:
    for value in ({1: "a", 2: "b"}, 10**30, ["\ud800"], {"a": {"b": True}}):
        assert canonical_json(value) == _dumps(value)


@pytest.mark.parametrize("value", [{"at": datetime(2026, 1, 1, tzinfo=UTC)}, [_Point(1, 2)]])
def test_what_json_dumps_refuses_is_still_refused(value: object) -> None:
    with pytest.raises(TypeError):
        canonical_json(value)


def test_spec_hashes_are_those_earlier_versions_recorded() -> None:
    """Golden values from the ``json.dumps`` text (a changed hash re-loads every model)."""
    community = {
        "url": "wavymulder/Analog-Diffusion",
        "model_format": "diffusers",
        "model_category": "stable_diffusion",
    }
    enterprise = {"url": "https://example.com/caf\u00e9.safetensors", "model_type": "ckpt"}
    assert spec_hash(community) == "sha256:39e672856ae12c5e"
    assert spec_hash(enterprise) == "sha256:0e30c0ba7b5e6515"


def test_a_plan_digest_is_the_hash_of_the_json_dumps_text() -> None:
    change = ModelChange(
        model_id="caf\u00e9",
        action=Action.LOAD,
        reason="missing",
        condition=Condition.MISSING,
        declared=True,
        managed=False,
        spec={"url": "a/b", "model_type": "huggingface"},
        spec_hash=spec_hash({"url": "a/b", "model_type": "huggingface"}),
        fields=(FieldChange(path="url", new="a/b"),),
        origin="m.yaml:3",
    )
    account = AccountPlan(
        account="acct", api=ApiKind.ENTERPRISE, live_fingerprint="sha256:0", changes=(change,)
    )
    plan = Plan(accounts=(account,), blockers=("b",))
    dumped = plan.model_dump(mode="json", include={"format_version", "accounts", "blockers"})
    expected = "sha256:" + hashlib.sha256(_dumps(dumped).encode()).hexdigest()[:16]
    assert plan.digest() == expected
    assert plan_document(plan)["digest"] == expected  # from the document's own dump
