"""The fast reading of plain manifests agrees with PyYAML's, and hands everything else over.

:func:`read_plain` must give exactly the values (types included) and lines the careful reading
gives, or ``None``; never a different answer. The loader must use it for valid plain files
(else the node tree is back, with its memory and time) and fall back for all the rest.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.manifest import loader, plainyaml
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.plainyaml import read_plain

ManifestTree = Callable[[Mapping[str, str]], Path]

REPO = Path(__file__).resolve().parents[2]


def _read(text: str) -> list[plainyaml.PlainDocument] | None:
    return read_plain(text, loader._Loader, loader._SECRET_KEY)


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (``1 == True``, ``1 == 1.0`` in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _careful(text: str) -> list[tuple[Any, int, tuple[int, ...]]]:
    """Each non-empty document's value, line, and its ``models`` items' lines, via nodes."""
    result = []
    parser = loader._Loader(text)
    while parser.check_node():
        node = parser.get_node()
        assert node is not None
        data = parser.construct_document(node)
        if data is None:
            continue
        models = next((v for k, v in node.value if k.value == "models"), None)
        items = models.value if isinstance(models, yaml.SequenceNode) else []
        lines = tuple(item.start_mark.line + 1 for item in items)
        result.append((data, node.start_mark.line + 1, lines))
    parser.dispose()
    return result


def _assert_agrees(text: str) -> None:
    documents = _read(text)
    assert documents is not None, "expected a plain document"
    expected = _careful(text)
    assert len(documents) == len(expected)
    for document, (data, line, lines) in zip(documents, expected, strict=True):
        assert _same(document.data, data), (document.data, data)
        assert document.line == line
        assert document.model_lines == lines


SCALARS = """\
version: 1
quoted_int: "1"
single: '2'
int: 42
hex: 0x1f
float: 1.5
exp: 1e3
inf: .inf
yes_word: yes
off_word: off
tilde: ~
empty:
null_word: null
date: 2024-01-02
stamp: 2001-12-14t21:59:43.10-05:00
sign: +12
dash: -x
dot: .hidden
lt: <not-merge
colon_url: https://example.com/a:b
block: |
  two
  lines
folded: >
  one
  line
flow: {a: 1, b: [x, "y", 3]}
nested:
  - [1, 2]
  - {k: v}
  - - deep
models:
  - model_id: a
    url: org/a

  # a comment between entries
  - {model_id: b, url: org/b}
  - model_id: c
"""


def test_scalars_resolve_as_pyyaml_resolves_them() -> None:
    _assert_agrees(SCALARS)
    (document,) = _read(SCALARS) or []
    assert document.data["date"] == datetime.date(2024, 1, 2)
    assert document.data["yes_word"] is True and document.data["off_word"] is False
    assert document.data["quoted_int"] == "1" and document.data["int"] == 42


def test_the_example_manifests_are_plain_and_agree() -> None:
    for path in sorted((REPO / "manifests").glob("*.yaml")):
        _assert_agrees(path.read_text(encoding="utf-8"))


def test_several_documents_and_empty_ones() -> None:
    text = "# head\n---\n---\na: 1\nmodels: [x, y]\n---\n# nothing\n---\nb: 2\n"
    _assert_agrees(text)
    assert [d.line for d in _read(text) or []] == [4, 9]


@pytest.mark.parametrize(
    "text",
    [
        "- a list\n",
        "just a scalar\n",
        "~\n",
        "a: &x 1\nb: *x\n",  # anchor and alias
        "base: &b {u: 1}\nother:\n  <<: *b\n",  # merge key
        "<<: {u: 1}\n",  # merge key without an alias
        "a: !!str 1\n",  # explicit tag
        "!!map {a: 1}\n",
        "a: !custom x\n",
        "a: 1\na: 2\n",  # duplicate key
        "models:\n  - model_id: x\n    url: a\n    url: b\n",
        "api_key: abc\n",  # looks like a secret
        "models:\n  - model_id: x\n    token: t\n",
        "1: one\n",  # keys YAML reads as other than strings
        "yes: one\n",
        "null: one\n",
        "? [a, b]\n: c\n",  # a complex key
        "a: " + "[" * 40 + "]" * 40 + "\n",  # deeper than any manifest
        "a: =\n",  # the "value" tag, which the safe loader cannot construct
        "a: [unclosed\n",  # not YAML at all
        "a: 1\n--- !!str\nb\n",
        # a quoted key reads as text; the same text written plain later does not
        'a: {"yes": 1}\nb: {yes: 2}\n',
        'a: {"null": 1}\nb: {null: 2}\n',
        'a: {"1": 1}\nb: {1: 2}\n',
        'a: {"<<": 1}\nb: {<<: {x: 1}}\n',
    ],
)
def test_anything_not_plain_is_handed_to_the_careful_reading(text: str) -> None:
    assert _read(text) is None


def test_a_file_without_documents_has_none() -> None:
    assert _read("") == []
    assert _read("# only a comment\n---\n") == []


_keys = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8).filter(
    lambda k: not loader._SECRET_KEY.fullmatch(k)
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
    | st.sampled_from(["yes", "No", "~", "0x10", "1_000", "1e3", "2020-02-02", ".5", "-", "<<x"])
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.dictionaries(_keys, _values, min_size=1, max_size=6),
    flow=st.sampled_from([False, True, None]),
    quotes=st.booleans(),
)
def test_generated_documents_agree_or_are_handed_over(
    data: dict[str, Any], flow: bool | None, quotes: bool
) -> None:
    text = yaml.safe_dump(
        data, default_flow_style=flow, default_style='"' if quotes else None, allow_unicode=True
    )
    documents = _read(text)
    if documents is None:  # e.g. a key that YAML reads back as a number: the careful way
        return
    (expected,) = _careful(text)
    (document,) = documents
    assert _same(document.data, expected[0])
    assert document.line == expected[1]


# ---------------------------------------------------------------------------------------------
# The loader's use of it
# ---------------------------------------------------------------------------------------------


def _entries(count: int) -> str:
    return "".join(
        f"  - model_id: m{i}\n    url: org/m{i}\n    model_type: huggingface\n"
        for i in range(count)
    )


FARM = "version: 1\naccount: farm\napi: enterprise\nkey_env: MODELSLAB_FARM\nmodels:\n"


def test_a_valid_plain_manifest_never_builds_the_node_tree(
    manifest_tree: ManifestTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    careful: list[str] = []
    original = loader._parse_documents

    def spied(text: str) -> Any:
        careful.append(text)
        return original(text)

    monkeypatch.setattr(loader, "_parse_documents", spied)
    root = manifest_tree({"farm.yaml": FARM + _entries(50)})

    (account,) = load_manifests([root])

    assert careful == []
    assert account.model_lines["m49"] == 6 + 3 * 49


def test_the_fast_and_the_careful_reading_load_the_same_accounts(
    manifest_tree: ManifestTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {p.name: p.read_text(encoding="utf-8") for p in (REPO / "manifests").glob("*.yaml")}
    files["farm2.yaml"] = FARM.replace("farm", "farm2") + _entries(20) + "---\n"
    root = manifest_tree(files)

    fast = load_manifests([root])
    monkeypatch.setattr(plainyaml, "read_plain", lambda *args: None)
    careful = load_manifests([root])

    assert fast == careful
    assert [a.model_lines for a in fast] == [a.model_lines for a in careful]


@pytest.mark.parametrize(
    ("tail", "line", "path", "expected"),
    [
        (
            "  - model_id: m0\n    url: org/x\n    model_type: huggingface\n",
            15,
            "models[3].model_id",
            "duplicate model_id 'm0' (first declared at line 6)",
        ),
        ("  - model_id: x\n    model_type: huggingface\n", 15, "models[3]", "'url' is required"),
        (
            "  - model_id: x\n    url: FILL-IN url\n    model_type: huggingface\n",
            16,
            "models[3].url",
            "fill in 'url'",
        ),
        (
            "  - model_id: x\n    url: u\n    model_type: nope\n",
            17,
            "models[3].model_type",
            "'nope' is not one of",
        ),
    ],
)
def test_a_plain_file_with_problems_is_reported_by_the_careful_reading(
    manifest_tree: ManifestTree, tail: str, line: int, path: str, expected: str
) -> None:
    root = manifest_tree({"farm.yaml": FARM + _entries(3) + tail})

    with pytest.raises(ManifestError) as caught:
        load_manifests([root])

    (problem,) = caught.value.problems
    assert (problem.line, problem.path) == (line, path)
    assert expected in problem.message


def test_a_key_env_outside_the_policy_is_reported_at_its_line(
    manifest_tree: ManifestTree,
) -> None:
    root = manifest_tree({"farm.yaml": FARM.replace("MODELSLAB_FARM", "OTHER_FARM") + _entries(2)})

    with pytest.raises(ManifestError) as caught:
        load_manifests([root])

    assert [(p.line, p.path) for p in caught.value.problems] == [(4, "key_env")]
