"""diff_specs: field-level differences between two load specs, as FieldChange values."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from reconciler.core.diff import FieldChange, diff_specs

SPEC = {"url": "org/a", "model_type": "huggingface", "revision": "fp32"}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(SPEC, dict(SPEC), (), id="equal"),
        pytest.param({}, {}, (), id="both-empty"),
        pytest.param(
            {},
            SPEC,
            (
                FieldChange(path="model_type", old=None, new="huggingface"),
                FieldChange(path="revision", old=None, new="fp32"),
                FieldChange(path="url", old=None, new="org/a"),
            ),
            id="all-new",
        ),
        pytest.param(
            SPEC,
            {},
            (
                FieldChange(path="model_type", old="huggingface", new=None),
                FieldChange(path="revision", old="fp32", new=None),
                FieldChange(path="url", old="org/a", new=None),
            ),
            id="all-removed",
        ),
        pytest.param(
            SPEC,
            {**SPEC, "url": "org/b"},
            (FieldChange(path="url", old="org/a", new="org/b"),),
            id="one-changed",
        ),
        pytest.param(
            SPEC,
            {"url": "org/b", "model_type": "huggingface", "webhook": "https://h"},
            (
                FieldChange(path="revision", old="fp32", new=None),
                FieldChange(path="url", old="org/a", new="org/b"),
                FieldChange(path="webhook", old=None, new="https://h"),
            ),
            id="added-removed-changed-sorted",
        ),
        pytest.param(
            {"url": "a", "revision": "fp16"},
            {"url": "b", "revision": "fp32"},
            (
                FieldChange(path="revision", old="fp16", new="fp32"),
                FieldChange(path="url", old="a", new="b"),
            ),
            id="every-field-changed-still-per-field",
        ),
        pytest.param(
            {"a.b": "1"},
            {"a.b": "2"},
            (FieldChange(path="a.b", old="1", new="2"),),
            id="dotted-key",
        ),
        pytest.param(
            {"url": ""},
            {"url": "x"},
            (FieldChange(path="url", old="", new="x"),),
            id="empty-string-is-a-value",
        ),
    ],
)
def test_diff_specs(
    old: dict[str, str], new: dict[str, str], expected: tuple[FieldChange, ...]
) -> None:
    assert diff_specs(old, new) == expected


def test_diff_specs_is_sorted_by_field_name_and_takes_any_mapping() -> None:
    old = MappingProxyType({c: "1" for c in "zyxa"})
    new = MappingProxyType({c: "2" for c in "bzyx"})
    paths = [change.path for change in diff_specs(old, new)]
    assert paths == sorted(paths) == ["a", "b", "x", "y", "z"]


def test_diff_specs_does_not_change_its_inputs() -> None:
    old, new = dict(SPEC), {**SPEC, "url": "org/b"}
    diff_specs(old, new)
    assert old == SPEC and new == {**SPEC, "url": "org/b"}


def test_field_change_is_frozen_and_serialisable() -> None:
    change = FieldChange(path="url", old="a", new="b")
    with pytest.raises(ValueError, match="frozen"):
        change.path = "x"  # type: ignore[misc]
    assert FieldChange.model_validate_json(change.model_dump_json()) == change
    assert FieldChange(path="url") == FieldChange(path="url", old=None, new=None)
