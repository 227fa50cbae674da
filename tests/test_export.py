"""The pure part of ``reconciler export`` (issue 12): the manifest it renders from live state and
ledger entries, and what ``--adopt`` decides; plus the loader's placeholder check.

The property that matters most: a spec the ledger recorded, written back by export and read by
the loader, resolves to the same ``spec_hash`` (otherwise the export would plan a replace).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.api import wire
from reconciler.api.kinds import ApiKind
from reconciler.core.ledger_entries import Intent, LedgerEntry
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.errors import ManifestError
from reconciler.export import (
    ExportAccount,
    adoptions,
    export_manifest,
)
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.models import PLACEHOLDER_MARKER, resolve_models

SCHEMA_REF = "../schemas/manifest.schema.json"
AT = "2026-12-01T06:00:00Z"


def live(**conditions: Condition) -> LiveState:
    return LiveState("acme", {m: LiveModel(m, c) for m, c in sorted(conditions.items())})


def entry(spec: dict[str, str]) -> LedgerEntry:
    from reconciler.manifest.models import spec_hash

    return LedgerEntry(spec_hash=spec_hash(spec), spec=spec, applied_at=AT, outcome="ready")


def community_spec(model_id: str, **fields: str) -> dict[str, str]:
    """A resolved community spec, as the ledger records it (documented defaults included)."""
    return {
        **wire.COMMUNITY_LOAD_DEFAULTS,
        "url": f"org/{model_id}",
        "model_format": "diffusers",
        "model_category": "stable_diffusion",
        "model_name": model_id,
        **fields,
    }


def load_text(tmp_path: Path, text: str) -> Any:
    folder = tmp_path / "manifests"
    folder.mkdir(exist_ok=True)
    (folder / "acme.yaml").write_text(text, encoding="utf-8")
    (account,) = load_manifests([folder])
    return account


COMMUNITY = ExportAccount("acme", ApiKind.COMMUNITY, "MODELSLAB_KEY_ACME")
ENTERPRISE = ExportAccount("acme", ApiKind.ENTERPRISE, "MODELSLAB_KEY_ACME")

#: Text from the server's side of things that YAML would misread if written raw.
AWKWARD = st.sampled_from(
    ["yes", "no", "null", "~", "1.0", "0o17", "# not a comment", "a: b", "- x", "'q'", '"d"',
     "line\nbreak", "tab\there", " lead", "trail ", "ünï", "{x}", "[y]", "*alias", "&anchor",
     "!tag", "%dir", "@at", "`tick`", "…"]
)  # fmt: skip


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    url=st.one_of(AWKWARD, st.text(min_size=1, max_size=40)),
    name=st.one_of(AWKWARD, st.text(min_size=1, max_size=40)),
    revision=st.sampled_from(wire.REVISIONS),
    visibility=st.sampled_from(wire.VISIBILITIES),
)
def test_a_recorded_community_spec_exports_to_the_same_spec_hash(
    tmp_path: Path, url: str, name: str, revision: str, visibility: str
) -> None:
    spec = community_spec(
        "alpha", url=url, model_name=name, revision=revision, model_visibility=visibility
    )
    result = export_manifest(
        COMMUNITY, live(alpha=Condition.READY), {"alpha": entry(spec)}, SCHEMA_REF
    )
    assert result.known == ("alpha",) and not result.placeholders
    (model,) = resolve_models(load_text(tmp_path, result.text).spec)
    assert dict(model.spec) == spec
    assert model.spec_hash == entry(spec).spec_hash


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model_type=st.sampled_from(wire.ENTERPRISE_MODEL_TYPES),
    from_safetensors=st.sampled_from(wire.YES_NO),
    upcast=st.sampled_from(wire.YES_NO),
    revision=st.sampled_from(wire.REVISIONS),
    webhook=st.one_of(st.none(), AWKWARD),
)
def test_a_recorded_enterprise_spec_exports_to_the_same_spec_hash(
    tmp_path: Path,
    model_type: str,
    from_safetensors: str,
    upcast: str,
    revision: str,
    webhook: str | None,
) -> None:
    spec = {
        **wire.ENTERPRISE_LOAD_DEFAULTS,
        "url": "org/alpha",
        "model_type": model_type,
        "from_safetensors": from_safetensors,
        "upcast_attention": upcast,
        "revision": revision,
        **({"webhook": webhook} if webhook is not None else {}),
    }
    result = export_manifest(
        ENTERPRISE, live(alpha=Condition.READY), {"alpha": entry(spec)}, SCHEMA_REF
    )
    (model,) = resolve_models(load_text(tmp_path, result.text).spec)
    assert model.spec_hash == entry(spec).spec_hash


def test_documented_defaults_are_left_out_of_the_entry() -> None:
    spec = community_spec("alpha", revision="fp32")
    result = export_manifest(
        COMMUNITY, live(alpha=Condition.READY), {"alpha": entry(spec)}, SCHEMA_REF
    )
    (written,) = yaml.safe_load(result.text)["models"]
    assert written == {
        "model_id": "alpha",
        "url": "org/alpha",
        "model_format": "diffusers",
        "model_category": "stable_diffusion",
        "revision": "fp32",
    }


def test_unknown_models_get_placeholders_and_the_header_says_what_to_do() -> None:
    pending = LedgerEntry(
        spec_hash="",
        applied_at=AT,
        outcome="pending",
        pending=Intent(action="load", spec_hash="sha256:x", at=AT),
    )
    result = export_manifest(
        COMMUNITY,
        live(a=Condition.READY, b=Condition.LOADING, c=Condition.FAILED),
        {"b": pending},  # an intent alone says nothing of the fields
        SCHEMA_REF,
    )
    assert result.placeholders == ("a", "b", "c") and not result.known
    assert result.text.startswith(f"# yaml-language-server: $schema={SCHEMA_REF}\n")
    assert "# 3 models need their fields filled in: replace every FILL-IN value" in result.text
    for written in yaml.safe_load(result.text)["models"]:
        assert set(written) == {"model_id", "url", "model_format", "model_category"}
        assert all(written[f].startswith(PLACEHOLDER_MARKER) for f in set(written) - {"model_id"})
    assert "url: FILL-IN (" in result.text  # a plain scalar: easy to find and replace


def test_evicted_ignored_and_undeclarable_ids_stay_out_of_the_entries() -> None:
    account = ExportAccount("acme", ApiKind.COMMUNITY, "MODELSLAB_KEY_ACME", ignore=("tmp-*",))
    state = LiveState(
        "acme",
        {
            "kept": LiveModel("kept", Condition.READY),
            "idle": LiveModel("idle", Condition.EVICTED),
            "tmp-1": LiveModel("tmp-1", Condition.READY),
            "bad id\n# x": LiveModel("bad id\n# x", Condition.READY),
        },
    )
    result = export_manifest(account, state, {}, SCHEMA_REF)
    document = yaml.safe_load(result.text)
    assert [m["model_id"] for m in document["models"]] == ["kept"]
    assert document["ignore"] == ["tmp-*"]
    assert result.evicted == ("idle",) and result.skipped == ("bad id\n# x",)
    assert "#   - model_id: idle\n" in result.text
    assert "tmp-1" not in result.text and "bad id" not in result.text


def test_an_empty_account_exports_a_manifest_that_validates(tmp_path: Path) -> None:
    result = export_manifest(ENTERPRISE, live(), {}, SCHEMA_REF)
    account = load_text(tmp_path, result.text)
    assert (account.name, account.api, account.spec.models) == ("acme", "enterprise", ())


# -- the loader's placeholder check ----------------------------------------------------------


def test_validate_names_every_placeholder_at_its_line(tmp_path: Path) -> None:
    text = (
        export_manifest(COMMUNITY, live(a=Condition.READY), {}, SCHEMA_REF).text
        + "defaults:\n  revision: FILL-IN\n"
    )
    with pytest.raises(ManifestError) as caught:
        load_text(tmp_path, text)
    lines = text.splitlines()
    found = {p.path: p for p in caught.value.problems}
    assert set(found) == {
        "models[0].url",
        "models[0].model_format",
        "models[0].model_category",
        "defaults.revision",
    }
    for path, problem in found.items():
        field = path.rsplit(".", 1)[1]
        assert problem.message.startswith(f"fill in '{field}': this is a placeholder")
        assert lines[problem.line - 1].strip(" -").startswith(f"{field}: {PLACEHOLDER_MARKER}")


# -- adoption --------------------------------------------------------------------------------

DECLARED = """\
version: 1
account: acme
api: community
key_env: MODELSLAB_KEY_ACME
ignore: [skip-*]
models:
  - {model_id: ready, url: org/r, model_format: diffusers, model_category: stable_diffusion}
  - {model_id: idle, url: org/i, model_format: diffusers, model_category: stable_diffusion}
  - {model_id: known, url: org/k, model_format: diffusers, model_category: stable_diffusion}
  - {model_id: missing, url: org/m, model_format: diffusers, model_category: stable_diffusion}
  - {model_id: broken, url: org/b, model_format: diffusers, model_category: stable_diffusion}
  - {model_id: skip-me, url: org/s, model_format: diffusers, model_category: stable_diffusion}
  - {model_id: gone, ensure: absent}
"""


def test_adoption_records_declared_live_models_the_ledger_does_not_know(tmp_path: Path) -> None:
    account = load_text(tmp_path, DECLARED)
    state = live(
        ready=Condition.READY,
        idle=Condition.EVICTED,
        known=Condition.READY,
        broken=Condition.FAILED,
        gone=Condition.READY,
    )
    known = entry(community_spec("known", url="org/other"))
    decided = {a.model_id: a for a in adoptions(account, state, {"known": known}, AT)}
    outcomes = {m: a.outcome for m, a in decided.items()}
    assert outcomes == {
        "ready": "adopted",
        "idle": "adopted",
        "known": "managed",  # its entry is kept: a spec change stays visible as a replace
        "missing": "not-adopted",
        "broken": "not-adopted",
    }
    desired = {m.model_id: m for m in account.desired()}
    adopted = decided["ready"].entry
    assert adopted is not None
    assert (adopted.outcome, adopted.spec_hash, adopted.applied_at) == (
        "adopted",
        desired["ready"].spec_hash,
        AT,
    )
    assert adopted.spec == dict(desired["ready"].spec)
    assert decided["known"].entry is None
