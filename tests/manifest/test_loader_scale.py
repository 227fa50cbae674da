"""The loader at scale: honest size is valid, alias expansion is not; one walk finds every key.

The guard refuses what aliases *add*, not how much was written (issue 11): one account of 100k
models is a valid manifest, while the 100,000-node limit it replaced refused ~9k.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import loader
from reconciler.manifest.loader import load_manifests

ManifestTree = Callable[[Mapping[str, str]], Path]

HEAD = "version: 1\naccount: farm\napi: enterprise\nkey_env: MODELSLAB_FARM\nmodels:\n"


def _entries(count: int) -> str:
    return "".join(
        f"  - model_id: m{i}\n    url: org/m{i}\n    model_type: huggingface\n"
        for i in range(count)
    )


def test_one_account_larger_than_the_old_node_limit_loads(manifest_tree: ManifestTree) -> None:
    count = 15_000  # 7 nodes per entry: more than 100,000 nodes
    root = manifest_tree({"farm.yaml": HEAD + _entries(count)})

    (account,) = load_manifests([root])

    assert len(account.spec.models) == count
    assert account.model_lines["m0"] == 6
    assert account.model_lines[f"m{count - 1}"] == 6 + 3 * (count - 1)


def test_key_problems_found_by_the_one_walk(manifest_tree: ManifestTree) -> None:
    last = "  - model_id: last\n    url: a\n    url: b\n    model_type: lora\n    api_key: x\n"
    text = HEAD + _entries(200) + last
    root = manifest_tree({"farm.yaml": text})

    with pytest.raises(ManifestError) as caught:
        load_manifests([root])

    shown = str(caught.value)
    assert "models[200].url: duplicate key" in shown
    assert "models[200].api_key: a manifest never holds an API key" in shown


def test_anchors_reused_by_every_entry_are_not_a_bomb(manifest_tree: ManifestTree) -> None:
    entries = "".join(f"  - model_id: m{i}\n    <<: *common\n" for i in range(3_000))
    text = HEAD.replace(
        "models:\n", "x-common: &common {url: org/x, model_type: huggingface}\nmodels:\n"
    )
    root = manifest_tree({"farm.yaml": text + entries})

    with pytest.raises(ManifestError) as caught:  # x-common is an unknown key, nothing else
        load_manifests([root])

    assert {p.path for p in caught.value.problems} == {"x-common"}


def test_a_secret_key_inside_an_aliased_mapping_is_found(manifest_tree: ManifestTree) -> None:
    text = HEAD.replace("models:\n", "defaults: &d {api_key: x}\nmodels:\n")
    text += "  - model_id: a\n    url: u\n    model_type: huggingface\n    extra: *d\n"
    root = manifest_tree({"farm.yaml": text})

    with pytest.raises(ManifestError) as caught:
        load_manifests([root])

    assert any("never holds an API key" in p.message for p in caught.value.problems)


def test_a_small_document_that_expands_a_lot_is_refused(manifest_tree: ManifestTree) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcde", "bcdef", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    root = manifest_tree({"bomb.yaml": "\n".join(lines) + "\n"})

    with pytest.raises(ManifestError, match=r"expands to more than \d+ nodes through aliases"):
        load_manifests([root])


def test_the_node_trees_are_not_kept_after_loading(manifest_tree: ManifestTree) -> None:
    root = manifest_tree(
        {"farm.yaml": HEAD + _entries(3), "list.yaml": "- not a mapping\n", "bad.yaml": "a: b\n"}
    )

    with pytest.raises(ManifestError):
        load_manifests([root])
    load_manifests([root / "farm.yaml"])

    assert len(loader._KEYS_SEEN) == 0
