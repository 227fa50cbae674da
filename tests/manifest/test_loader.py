"""The loader: files and folders, documents, defaults, and robustness against any input."""

from __future__ import annotations

import copy
import string
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.models import (
    AbsentModel,
    CommunityAccount,
    DesiredModel,
    EnterpriseAccount,
    resolve_models,
    spec_hash,
)

ManifestTree = Callable[[Mapping[str, str]], Path]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "manifests").glob("*.yaml"))

COMMUNITY = """\
version: 1
account: acme
api: community
key_env: MODELSLAB_ACME_KEY
defaults:
  revision: fp32
  model_visibility: private
models:
  - model_id: plain
    url: org/plain
    model_format: diffusers
    model_category: stable_diffusion
  - model_id: named
    url: org/named
    model_format: safetensors
    model_category: lora
    model_name: Named Model
    revision: fp16
    protect: true
  - model_id: gone
    ensure: absent
"""

ENTERPRISE = """\
version: 1
account: farm
api: enterprise
key_env: MODELSLAB_FARM_KEY
defaults:
  model_type: huggingface
  protect: true
models:
  - model_id: base
    url: org/base
  - model_id: ckpt
    url: https://example.com/a.safetensors
    model_type: custom_ckpt
    from_safetensors: "yes"
"""


# ---------------------------------------------------------------------------------------------
# Files, folders, documents
# ---------------------------------------------------------------------------------------------


def test_loads_the_example_manifests() -> None:
    accounts = load_manifests([REPO / "manifests"])

    assert [a.name for a in accounts] == ["render-farm", "studio-prod", "studio-staging"]
    assert {a.name: a.api for a in accounts} == {
        "render-farm": "enterprise",
        "studio-prod": "community",
        "studio-staging": "community",
    }


def test_folders_are_walked_recursively_for_yaml_and_yml(manifest_tree: ManifestTree) -> None:
    root = manifest_tree(
        {
            "a.yaml": COMMUNITY,
            "deep/er/b.yml": ENTERPRISE,
            "notes.txt": "not a manifest: {",
            "deep/c.json": "{}",
        }
    )

    accounts = load_manifests([root])

    assert [a.name for a in accounts] == ["acme", "farm"]
    assert accounts[1].file.endswith("b.yml")


def test_a_file_named_twice_is_loaded_once(manifest_tree: ManifestTree) -> None:
    root = manifest_tree({"a.yaml": COMMUNITY})

    accounts = load_manifests([root, root / "a.yaml", str(root / "a.yaml")])

    assert [a.name for a in accounts] == ["acme"]


def test_several_documents_per_file_keep_their_lines(manifest_tree: ManifestTree) -> None:
    root = manifest_tree({"both.yaml": f"# two accounts\n{COMMUNITY}---\n{ENTERPRISE}"})

    acme, farm = load_manifests([root / "both.yaml"])

    assert acme.line == 2
    assert farm.line == 2 + COMMUNITY.count("\n") + 1
    assert acme.model_lines == {"plain": 10, "named": 14, "gone": 21}
    assert farm.origin("ckpt") == f"{farm.file}:{farm.line + 10}"
    assert farm.origin("unknown") == f"{farm.file}:{farm.line}"


def test_empty_documents_between_accounts_are_skipped(manifest_tree: ManifestTree) -> None:
    root = manifest_tree({"a.yaml": f"---\n---\n{COMMUNITY}---\n"})

    assert [a.name for a in load_manifests([root])] == ["acme"]


def test_an_error_carries_every_problem_as_data(manifest_tree: ManifestTree) -> None:
    root = manifest_tree({"a.yaml": COMMUNITY.replace("fp32", "fp64"), "b.yaml": "- 1\n"})

    with pytest.raises(ManifestError) as caught:
        load_manifests([root])

    problems = caught.value.problems
    assert [(Path(p.file).name, p.line, p.column, p.path) for p in problems] == [
        ("a.yaml", 6, 13, "defaults.revision"),
        ("b.yaml", 1, 1, ""),
    ]
    assert str(caught.value).splitlines() == [str(p) for p in problems]
    assert caught.value.failure_reason == "invalid-manifest"


def test_a_missing_field_is_reported_with_the_schema_errors(manifest_tree: ManifestTree) -> None:
    text = (
        "version: 1\naccount: a\napi: community\nkey_env: MODELSLAB_K\nmodels:\n"
        "  - model_id: x\n    url: org/x\n    model_format: safetensor\n"
    )
    root = manifest_tree({"a.yaml": text})

    with pytest.raises(ManifestError) as caught:
        load_manifests([root])

    found = {(p.line, p.path, p.message.split(" (")[0]) for p in caught.value.problems}
    assert (6, "models[0]", "'model_category' is required") in found
    assert any(path == "models[0].model_format" for _, path, _ in found)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("2020-13-45", "'2020-13-45' is not a valid timestamp"),
        ("2021-02-30", "'2021-02-30' is not a valid timestamp"),
        ("2020-01-01 25:00:00", "'2020-01-01 25:00:00' is not a valid timestamp"),
        ('!!int ""', "'' is not a valid int"),
        ('!!float ""', "'' is not a valid float"),
        ("!!bool maybe", "'maybe' is not a valid bool"),
        ("!!timestamp x", "'x' is not a valid timestamp"),
    ],
)
def test_a_value_yaml_cannot_build_is_a_problem_at_its_line(
    manifest_tree: ManifestTree, token: str, message: str
) -> None:
    """PyYAML resolves the token (or is told its type) and fails building it with a bare
    ValueError, IndexError, KeyError or AttributeError; the loader says where instead."""
    text = (
        "version: 1\naccount: a\napi: community\nkey_env: MODELSLAB_K\nmodels:\n"
        f"  - model_id: x\n    url: org/x\n    when: {token}\n"
    )
    root = manifest_tree({"a.yaml": text})

    with pytest.raises(ManifestError) as caught:
        load_manifests([root])

    (problem,) = caught.value.problems
    assert (Path(problem.file).name, problem.line, problem.column) == ("a.yaml", 8, 11)
    assert problem.message == message


def test_an_unbuildable_value_of_a_secret_looking_key_is_not_quoted(
    manifest_tree: ManifestTree,
) -> None:
    secret = "ml-SuperSecretKey123"
    text = (
        f"version: 1\naccount: a\napi: community\nkey_env: MODELSLAB_K\n"
        f"api_key: !!bool {secret}\nmodels: []\n"
    )
    root = manifest_tree({"a.yaml": text})

    with pytest.raises(ManifestError) as caught:
        load_manifests([root])

    assert secret.lower() not in str(caught.value).lower()
    (problem,) = caught.value.problems
    assert (problem.line, problem.message) == (5, "the value is not a valid bool")


def test_a_file_that_is_not_utf8_is_a_problem(manifest_tree: ManifestTree) -> None:
    root = manifest_tree({})
    (root / "bad.yaml").write_bytes(b"version: 1\naccount: \xff\xfe\n")

    with pytest.raises(ManifestError, match=r"bad\.yaml:2:10: not UTF-8 text \(byte 0xff\)"):
        load_manifests([root])


def test_odd_keys_are_escaped_so_each_problem_stays_one_line(
    manifest_tree: ManifestTree,
) -> None:
    text = (
        "version: 1\naccount: a\napi: community\nkey_env: MODELSLAB_K\n"
        '"a\\nb": 1\ndefaults: {"\\u2028": 1}\n'
    )
    root = manifest_tree({"a.yaml": text})

    with pytest.raises(ManifestError) as caught:
        load_manifests([root])

    assert [(p.path, p.message) for p in caught.value.problems] == [
        ('["a\\nb"]', "unknown key 'a\\nb'"),
        ('defaults["\\u2028"]', "unknown key '\\u2028'"),
    ]
    assert len(str(caught.value).splitlines()) == 2


def test_an_alias_bomb_is_refused_quickly(manifest_tree: ManifestTree) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    root = manifest_tree({"bomb.yaml": "\n".join(lines) + "\n"})

    with pytest.raises(ManifestError, match="expands to more than"):
        load_manifests([root])


# ---------------------------------------------------------------------------------------------
# Defaults and resolved models
# ---------------------------------------------------------------------------------------------


def test_community_defaults_and_documented_defaults_are_merged(
    manifest_tree: ManifestTree,
) -> None:
    (account,) = load_manifests([manifest_tree({"a.yaml": COMMUNITY})])
    assert isinstance(account.spec, CommunityAccount)

    plain, named, gone = resolve_models(account.spec)

    assert plain == DesiredModel(
        "plain",
        "present",
        False,
        {
            "url": "org/plain",
            "model_format": "diffusers",
            "model_category": "stable_diffusion",
            "model_name": "plain",  # the model_id when left out
            "model_visibility": "private",  # from defaults
            "revision": "fp32",  # from defaults, over the documented fp16
            "force_load": "yes",  # documented defaults
            "hf_upload": "no",
        },
    )
    assert named.spec["model_name"] == "Named Model"
    assert named.spec["revision"] == "fp16"  # the entry wins over defaults
    assert named.protect is True
    assert gone == DesiredModel("gone", "absent", False, {})
    assert account.desired() == (plain, named, gone)


def test_enterprise_defaults_and_documented_defaults_are_merged(
    manifest_tree: ManifestTree,
) -> None:
    (account,) = load_manifests([manifest_tree({"a.yaml": ENTERPRISE})])
    assert isinstance(account.spec, EnterpriseAccount)

    base, ckpt = account.desired()

    assert base.spec == {
        "url": "org/base",
        "model_type": "huggingface",
        "from_safetensors": "no",
        "revision": "fp32",
        "upcast_attention": "no",
    }
    assert "model_name" not in base.spec  # enterprise load_model has no model_name
    assert ckpt.spec["model_type"] == "custom_ckpt"
    assert ckpt.spec["from_safetensors"] == "yes"
    assert base.protect and ckpt.protect  # protect: true in defaults


def test_writing_a_documented_default_explicitly_is_the_same_spec(
    manifest_tree: ManifestTree,
) -> None:
    implicit = COMMUNITY
    explicit = COMMUNITY.replace(
        "    url: org/plain\n", "    url: org/plain\n    force_load: 'yes'\n    model_name: plain\n"
    )
    (a,) = load_manifests([manifest_tree({"a.yaml": implicit})])
    (b,) = load_manifests([manifest_tree({"a.yaml": explicit})])

    assert a.desired()[0].spec_hash == b.desired()[0].spec_hash
    assert a.desired()[0].spec_hash == spec_hash(dict(a.desired()[0].spec))
    assert a.desired()[0].spec_hash.startswith("sha256:")


def test_the_example_accounts_resolve() -> None:
    accounts = {a.name: a for a in load_manifests([REPO / "manifests"])}

    farm = {m.model_id: m for m in accounts["render-farm"].desired()}
    assert farm["old-experiment"].ensure == "absent"
    assert farm["canny"].spec["model_type"] == "controlnet"
    assert farm["canny"].spec["revision"] == "fp16"  # defaults over the documented fp32
    prod = accounts["studio-prod"]
    assert prod.spec.prune == "managed"
    assert prod.spec.ignore == ("scratch-*",)
    assert {m.model_id: m.protect for m in prod.desired()}["majicmix-realistic"] is True
    assert not any(isinstance(m, AbsentModel) for m in accounts["studio-staging"].spec.models)


# ---------------------------------------------------------------------------------------------
# Robustness: whatever the input, only ManifestError escapes
# ---------------------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["community", "enterprise", "absent", "present", "yes", "fp16", "1"]),
)
_keys = st.one_of(
    st.sampled_from(
        [
            *("version", "account", "api", "key_env", "models", "defaults", "model_id", "url"),
            *("key", "ensure", "protect", "prune", "ignore", "queue_limit", "model_type"),
        ]
    ),
    st.text(max_size=10),
    st.integers(),
    st.booleans(),
    st.none(),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One level of nesting: a list or a mapping of ``children``.

    A named function, not a lambda: Hypothesis checks that ``extend`` uses its argument by
    reading its source, which is unreliable for a lambda and fails the run with a warning.
    """
    return st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5)


_trees = st.recursive(_scalars, _containers, max_leaves=25)
_garbage = st.text(alphabet=string.printable + "\x00\ufeff\u2028é€{}[]&*!|>'\"%@`#-?:,", max_size=8)


def _example_documents() -> list[Any]:
    documents: list[Any] = []
    for path in EXAMPLES:
        documents.extend(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    return documents


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a nested dict/list structure, the root included."""
    found = [here]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*here, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*here, index)))
    return found


@st.composite
def _mutated_example(draw: st.DrawFn) -> str:
    """An example manifest with keys deleted, values replaced or keys added, then dumped."""
    document = copy.deepcopy(draw(st.sampled_from(_example_documents())))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(_trees)
        elif isinstance(parent, dict):
            parent[draw(_keys)] = draw(_trees)
        else:
            parent.append(draw(_trees))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=draw(st.booleans()))


@st.composite
def _garbled_text(draw: st.DrawFn) -> str:
    """Example manifest text with garbage inserted, or lines deleted or duplicated."""
    text = draw(st.sampled_from(EXAMPLES)).read_text(encoding="utf-8")
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        action = draw(st.sampled_from(["insert", "delete-line", "duplicate-line", "cut"]))
        lines = text.splitlines(keepends=True)
        line = min(text.count("\n", 0, at), len(lines) - 1)
        if action == "insert":
            text = text[:at] + draw(_garbage) + text[at:]
        elif action == "delete-line":
            text = "".join(lines[:line] + lines[line + 1 :])
        elif action == "duplicate-line":
            text = "".join(lines[: line + 1] + lines[line:])
        else:
            text = text[:at]
    return text


_inputs = st.one_of(
    st.text(max_size=200),
    _trees.map(lambda tree: yaml.safe_dump(tree)),
    st.lists(_trees, min_size=1, max_size=3).map(lambda docs: yaml.safe_dump_all(docs)),
    _mutated_example(),
    _garbled_text(),
)


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(files=st.lists(_inputs, min_size=1, max_size=3))
def test_only_manifest_errors_escape_the_loader(files: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for index, text in enumerate(files):
            Path(folder, f"m{index}.yaml").write_text(text, encoding="utf-8", errors="replace")
        try:
            accounts = load_manifests([folder])
        except ManifestError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert problem.message
                assert problem.line >= 1 or problem.path == ""
                assert "\n" not in str(problem)  # one line per problem, always
        else:
            assert accounts
            for account in accounts:
                account.desired()  # resolving a valid account never fails either


def test_the_tree_strategy_recurses_through_a_named_function() -> None:
    """Hypothesis reads ``extend``'s source to check it recurses; a lambda's read is unreliable."""
    trees: Any = getattr(_trees, "wrapped_strategy", _trees)  # hypothesis's lazy wrapper, or not
    extend = trees.extend

    assert extend is _containers
    assert extend.__name__ != "<lambda>"
