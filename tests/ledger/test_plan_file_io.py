"""Saved plan files: round trip, and refusal of edited, foreign or unreadable files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.core.diff import FieldChange
from reconciler.core.live import Condition
from reconciler.core.plan import AccountPlan, Action, ModelChange, Plan
from reconciler.errors import ConfigError
from reconciler.manifest.loader import DEFAULT_MANIFEST_PATHS
from reconciler.planfile import read_plan_file, split_plan_file, write_plan_file
from reconciler.render.plan_json import plan_json_text


@pytest.fixture
def plan() -> Plan:
    load = ModelChange(
        model_id="analog-diffusion",
        action=Action.LOAD,
        reason="not on the account",
        condition=Condition.MISSING,
        declared=True,
        managed=False,
        spec={"model_format": "diffusers", "url": "wavymulder/Analog-Diffusion"},
        spec_hash="sha256:abc",
        fields=(FieldChange(path="url", new="wavymulder/Analog-Diffusion"),),
        origin="manifests/prod.yaml:9",
    )
    account = AccountPlan(
        account="studio-prod",
        api="community",
        live_fingerprint="sha256:1234",
        changes=(load,),
        notes=("a note",),
    )
    return Plan(accounts=(account,), blockers=("too many deletes",))


def test_round_trip_equals_the_plan(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_plan_file(plan, path)
    assert read_plan_file(path) == plan
    assert path.read_text(encoding="utf-8") == plan_json_text(plan)


def test_round_trip_does_not_depend_on_spec_key_order(plan: Plan, tmp_path: Path) -> None:
    account = plan.accounts[0]
    load = account.changes[0].model_copy(update={"spec": {"url": "u", "model_format": "d"}})
    unsorted = plan.model_copy(
        update={"accounts": (account.model_copy(update={"changes": (load,)}),)}
    )
    path = tmp_path / "plan.json"
    write_plan_file(unsorted, path)
    assert read_plan_file(path) == unsorted


def test_an_edited_file_is_refused(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_plan_file(plan, path)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["accounts"][0]["changes"][0]["action"] = "delete"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError, match="was edited") as caught:
        read_plan_file(path)
    assert str(path) in str(caught.value)


def test_derived_summary_may_change_without_refusal(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_plan_file(plan, path)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["summary"] = {}
    path.write_text(json.dumps(document), encoding="utf-8")
    assert read_plan_file(path) == plan


@pytest.mark.parametrize("version", [2, "1", None])
def test_unknown_format_version_is_refused(plan: Plan, tmp_path: Path, version: object) -> None:
    path = tmp_path / "plan.json"
    write_plan_file(plan, path)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["format_version"] = version
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"format_version {json.dumps(version)}"):
        read_plan_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format_version": 1, "accounts": "x"}', "is not a valid plan: accounts"),
    ],
)
def test_invalid_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        read_plan_file(path)
    assert str(path) in str(caught.value)
    assert caught.value.__cause__ is not None or "expected" in message


def test_an_invalid_plan_counts_its_other_problems(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"format_version": 1, "accounts": "x", "blockers": 3}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"is not a valid plan: accounts: .*; and 1 more"):
        read_plan_file(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read plan file"):
        read_plan_file(tmp_path / "nope.json")


def test_an_unwritable_path_is_a_config_error(plan: Plan, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write plan file"):
        write_plan_file(plan, tmp_path / "missing-dir" / "plan.json")


def test_apply_arguments_name_one_saved_plan_and_the_manifest_paths() -> None:
    assert split_plan_file(["plan.json", "manifests/", "more.yaml"]) == (
        Path("plan.json"),
        ("manifests/", "more.yaml"),
    )
    assert split_plan_file(["manifests/"]) == (None, ("manifests/",))
    assert split_plan_file(["plan.json"]) == (Path("plan.json"), DEFAULT_MANIFEST_PATHS)
    with pytest.raises(ConfigError, match=r"one saved plan, got a\.json, b\.json"):
        split_plan_file(["a.json", "b.json"])
