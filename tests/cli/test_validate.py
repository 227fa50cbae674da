"""``reconciler validate`` end to end: broken manifests, valid ones, and ``-o json``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.cli import run

ManifestTree = Callable[[Mapping[str, str]], Path]

REPO = Path(__file__).resolve().parents[2]

COMMUNITY = "version: 1\naccount: acme\napi: community\nkey_env: MODELSLAB_ACME_KEY\n"  # lines 1-4
ENTERPRISE = (
    "version: 1\naccount: farm\napi: enterprise\nkey_env: MODELSLAB_FARM_KEY\n"  # lines 1-4
)
C_MODEL = (  # a valid community entry, 4 lines
    "  - model_id: m1\n"
    "    url: org/repo\n"
    "    model_format: diffusers\n"
    "    model_category: stable_diffusion\n"
)
E_MODEL = "  - model_id: e1\n    url: org/repo\n    model_type: huggingface\n"  # 3 lines


@dataclass(frozen=True)
class Broken:
    """A broken manifest tree and the one problem ``validate`` must report."""

    id: str
    files: dict[str, str]
    where: str  # "file:line" the message must start with
    path: str  # the field path the message must name ("" when there is none)
    says: tuple[str, ...]  # fragments of the message
    args: tuple[str, ...] = (".",)
    secret: str = ""  # a value that must never be echoed


def enum_case(api: str, name: str, bad: str, allowed: str) -> Broken:
    """A model entry with one enum field set to a value outside the documented ones."""
    head, entry = (COMMUNITY, C_MODEL) if api == "community" else (ENTERPRISE, E_MODEL)
    entry = "".join(line for line in entry.splitlines(keepends=True) if f" {name}:" not in line)
    text = f"{head}models:\n{entry}    {name}: {bad}\n"
    line = text.count("\n")
    return Broken(
        f"enum-{api}-{name}",
        {"m.yaml": text},
        f"m.yaml:{line}:",
        f"models[0].{name}",
        (repr(bad), f"is not one of {allowed}"),
    )


BROKEN = [
    # --- YAML itself --------------------------------------------------------------------------
    Broken(
        "yaml-syntax",
        {"m.yaml": "version: 1\naccount: acme\n  api: community\n"},
        "m.yaml:3:",
        "",
        ("YAML syntax error", "mapping values are not allowed"),
    ),
    Broken(
        "yaml-unclosed-flow",
        {"m.yaml": COMMUNITY + "ignore: [a, b\nmodels: []\n"},
        "m.yaml:6:",
        "",
        ("YAML syntax error",),
    ),
    Broken(
        "yaml-tab-indent",
        {"m.yaml": COMMUNITY + "models:\n\t- model_id: m1\n"},
        "m.yaml:6:",
        "",
        ("YAML syntax error",),
    ),
    Broken(
        "yaml-duplicate-key",
        {"m.yaml": COMMUNITY + "key_env: OTHER_KEY\n"},
        "m.yaml:5:",
        "key_env",
        ("duplicate key (first at line 4)",),
    ),
    Broken(
        "yaml-alias-cycle",
        {"m.yaml": COMMUNITY + "models: &loop\n  - *loop\n"},
        "m.yaml:5:",
        "",
        ("alias refers to a node that contains it",),
    ),
    Broken(
        "yaml-too-deep",
        {"m.yaml": COMMUNITY + "ignore: " + "[" * 40 + "]" * 40 + "\n"},
        "m.yaml:5:",
        "",
        ("nested deeper than",),
    ),
    Broken(
        "yaml-non-string-key",
        {"m.yaml": COMMUNITY + "models:\n  - model_id: m1\n    1: x\n"},
        "m.yaml:7:",
        "models[0].1",
        ("must be a string",),
    ),
    Broken(
        "yaml-control-character",
        {"m.yaml": COMMUNITY + "prune: none\x07\n"},
        "m.yaml:5:",
        "",
        ("YAML syntax error: unacceptable character #x0007",),
    ),
    # --- documents that are not an account ----------------------------------------------------
    Broken("empty-file", {"m.yaml": ""}, "m.yaml:1:", "", ("empty manifest",)),
    Broken("comments-only", {"m.yaml": "# nothing\n"}, "m.yaml:1:", "", ("empty manifest",)),
    Broken("doc-is-list", {"m.yaml": "- a\n- b\n"}, "m.yaml:1:", "", ("must be a mapping",)),
    Broken("doc-is-scalar", {"m.yaml": "hello\n"}, "m.yaml:1:", "", ("must be a mapping",)),
    Broken(
        "second-document-broken",
        {"m.yaml": COMMUNITY + "---\n" + ENTERPRISE.replace("farm", "farm2") + "prune: some\n"},
        "m.yaml:10:",
        "prune",
        ("'some' is not one of none, managed, all",),
    ),
    # --- account fields -----------------------------------------------------------------------
    Broken(
        "missing-version",
        {"m.yaml": "account: acme\napi: community\nkey_env: MODELSLAB_ACME_KEY\n"},
        "m.yaml:1:",
        "version",
        ("'version' is required",),
    ),
    Broken(
        "bad-version",
        {"m.yaml": COMMUNITY.replace("version: 1", "version: 2")},
        "m.yaml:1:",
        "version",
        ("2 is not supported", "expected 1"),
    ),
    Broken(
        "missing-api",
        {"m.yaml": "version: 1\naccount: acme\nkey_env: MODELSLAB_ACME_KEY\n"},
        "m.yaml:1:",
        "api",
        ("'api' is required", "community or enterprise"),
    ),
    Broken(
        "bad-api",
        {"m.yaml": COMMUNITY.replace("api: community", "api: v6")},
        "m.yaml:3:",
        "api",
        ("'v6' is not one of community, enterprise",),
    ),
    Broken(
        "missing-account",
        {"m.yaml": "version: 1\napi: community\nkey_env: MODELSLAB_ACME_KEY\n"},
        "m.yaml:1:",
        "account",
        ("'account' is required",),
    ),
    Broken(
        "missing-key-env",
        {"m.yaml": "version: 1\naccount: acme\napi: community\n"},
        "m.yaml:1:",
        "key_env",
        ("'key_env' is required",),
    ),
    Broken(
        "key-env-pattern",
        {"m.yaml": COMMUNITY.replace("MODELSLAB_ACME_KEY", "sk-live-9f8e7d6c")},
        "m.yaml:4:",
        "key_env",
        ("key_env is not a valid variable name (value hidden)",),
        secret="9f8e7d6c",
    ),
    Broken(
        "queue-limit-zero",
        {"m.yaml": COMMUNITY + "queue_limit: 0\n"},
        "m.yaml:5:",
        "queue_limit",
        ("out of range", "greater than or equal to 1"),
    ),
    Broken(
        "queue-limit-too-high",
        {"m.yaml": COMMUNITY + "queue_limit: 1000\n"},
        "m.yaml:5:",
        "queue_limit",
        ("out of range", "less than or equal to 100"),
    ),
    Broken(
        "queue-limit-not-int",
        {"m.yaml": COMMUNITY + "queue_limit: many\n"},
        "m.yaml:5:",
        "queue_limit",
        ("valid integer",),
    ),
    Broken(
        "bad-prune",
        {"m.yaml": COMMUNITY + "prune: everything\n"},
        "m.yaml:5:",
        "prune",
        ("'everything' is not one of none, managed, all",),
    ),
    Broken(
        "ignore-not-a-list",
        {"m.yaml": COMMUNITY + "ignore: scratch-*\n"},
        "m.yaml:5:",
        "ignore",
        ("must be a list",),
    ),
    Broken(
        "models-not-a-list",
        {"m.yaml": COMMUNITY + "models:\n  m1: {}\n"},
        "m.yaml:6:",
        "models",
        ("must be a list (got mapping)",),
    ),
    Broken(
        "unknown-account-key",
        {"m.yaml": COMMUNITY + "prunes: all\n"},
        "m.yaml:5:",
        "prunes",
        ("unknown key 'prunes'", "did you mean 'prune'?"),
    ),
    Broken(
        "api-key-in-file",
        {"m.yaml": COMMUNITY + "api_key: sk-top-secret-4242\n"},
        "m.yaml:5:",
        "api_key",
        ("never holds an API key", "key_env"),
        secret="top-secret-4242",
    ),
    # --- strict types and bounded lengths (issue 14) ------------------------------------------
    Broken(
        "version-boolean",
        {"m.yaml": COMMUNITY.replace("version: 1", "version: true")},
        "m.yaml:1:",
        "version",
        ("not a boolean",),
    ),
    Broken(
        "queue-limit-string",
        {"m.yaml": COMMUNITY + 'queue_limit: "5"\n'},
        "m.yaml:5:",
        "queue_limit",
        ("valid integer", "string"),
    ),
    Broken(
        "queue-limit-boolean",
        {"m.yaml": COMMUNITY + "queue_limit: true\n"},
        "m.yaml:5:",
        "queue_limit",
        ("valid integer", "boolean"),
    ),
    Broken(
        "protect-string",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL + '    protect: "yes"\n'},
        "m.yaml:10:",
        "models[0].protect",
        ("valid boolean", "string"),
    ),
    Broken(
        "model-name-binary",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL + "    model_name: !!binary aGVsbG8=\n"},
        "m.yaml:10:",
        "models[0].model_name",
        ("valid string", "bytes"),
    ),
    Broken(
        "key-env-huge",
        {"m.yaml": COMMUNITY.replace("MODELSLAB_ACME_KEY", "MODELSLAB_" + "A" * 100_000)},
        "m.yaml:4:",
        "key_env",
        ("(value hidden)",),
        secret="A" * 40,
    ),
    Broken(
        "url-too-long",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL.replace("org/repo", "o/" + "r" * 3000)},
        "m.yaml:7:",
        "models[0].url",
        ("at most 2048 characters",),
    ),
    Broken(
        "ignore-too-many",
        {"m.yaml": COMMUNITY + "ignore: [" + ", ".join(f"p{i}" for i in range(1001)) + "]\n"},
        "m.yaml:5:",
        "ignore",
        ("at most 1000 items",),
    ),
    # --- the operator's trust policy (issue 9) and what plan would refuse (issue 14) ----------
    Broken(
        "key-env-outside-the-pattern",
        {"m.yaml": COMMUNITY.replace("MODELSLAB_ACME_KEY", "GITHUB_TOKEN")},
        "m.yaml:4:10",
        "key_env",
        ("outside the operator's pattern", "(value hidden)", "--key-env-pattern"),
        secret="GITHUB_TOKEN",
    ),
    Broken(
        "api-base-foreign",
        {"m.yaml": COMMUNITY + "api_base: https://attacker.example/api/\n"},
        "m.yaml:5:11",
        "api_base",
        ("not an official API base", "--allow-api-base"),
    ),
    Broken(
        "api-base-plain-http",
        {"m.yaml": COMMUNITY + "api_base: http://modelslab.com/api/\n"},
        "m.yaml:5:11",
        "api_base",
        ("plain http://", "use an https:// base"),
    ),
    Broken(
        "api-base-port-out-of-range",
        {"m.yaml": COMMUNITY + "api_base: http://127.0.0.1:99999/api/\n"},
        "m.yaml:5:11",
        "api_base",
        ("the port 99999 is not in 1-65535",),
    ),
    Broken(
        "api-base-query",
        {"m.yaml": COMMUNITY + "api_base: http://127.0.0.1:8080/api/?a=1\n"},
        "m.yaml:5:11",
        "api_base",
        ("a query",),
    ),
    Broken(
        "api-base-fragment",
        {"m.yaml": COMMUNITY + "api_base: 'http://127.0.0.1:8080/api/#x'\n"},
        "m.yaml:5:11",
        "api_base",
        ("a fragment",),
    ),
    Broken(
        "api-base-unclosed-ipv6",
        {"m.yaml": COMMUNITY + "api_base: http://[::1\n"},
        "m.yaml:5:11",
        "api_base",
        ("IPv6 address is not closed",),
    ),
    Broken(
        "api-base-password",
        {"m.yaml": COMMUNITY + "api_base: http://me:Pa55w0rd@127.0.0.1:8080/api/\n"},
        "m.yaml:5:11",
        "api_base",
        ("user name or password",),
        secret="Pa55w0rd",
    ),
    # --- defaults -----------------------------------------------------------------------------
    Broken(
        "unknown-defaults-key",
        {"m.yaml": COMMUNITY + "defaults:\n  revison: fp16\n"},
        "m.yaml:6:",
        "defaults.revison",
        ("unknown key 'revison'", "did you mean 'revision'?"),
    ),
    Broken(
        "key-in-defaults",
        {"m.yaml": COMMUNITY + "defaults:\n  apikey: abcdef0123456789\n"},
        "m.yaml:6:",
        "defaults.apikey",
        ("never holds an API key",),
        secret="abcdef0123456789",
    ),
    Broken(
        "enterprise-field-in-community-defaults",
        {"m.yaml": COMMUNITY + "defaults:\n  model_type: lora\n"},
        "m.yaml:6:",
        "defaults.model_type",
        ("unknown key 'model_type': a load field of enterprise accounts, not of community",),
    ),
    # --- model entries ------------------------------------------------------------------------
    Broken(
        "key-in-model",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL + "    key: sk-model-secret-77\n"},
        "m.yaml:10:",
        "models[0].key",
        ("never holds an API key",),
        secret="model-secret-77",
    ),
    Broken(
        "unknown-model-key",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL + "    modle_name: Pretty\n"},
        "m.yaml:10:",
        "models[0].modle_name",
        ("unknown key 'modle_name'", "did you mean 'model_name'?"),
    ),
    Broken(
        "model-entry-not-a-mapping",
        {"m.yaml": COMMUNITY + "models:\n  - m1\n"},
        "m.yaml:6:",
        "models[0]",
        ("must be a mapping (got string)",),
    ),
    Broken(
        "url-wrong-type",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL.replace("org/repo", "42")},
        "m.yaml:7:",
        "models[0].url",
        ("valid string", "integer"),
    ),
    Broken(
        "protect-wrong-type",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL + "    protect: maybe\n"},
        "m.yaml:10:",
        "models[0].protect",
        ("valid boolean",),
    ),
    Broken(
        "bad-model-id",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL.replace("id: m1", "id: 'my model!'")},
        "m.yaml:6:",
        "models[0].model_id",
        ("does not match the pattern",),
    ),
    Broken(
        "missing-model-id",
        {"m.yaml": COMMUNITY + "models:\n  - url: org/repo\n"},
        "m.yaml:6:",
        "models[0].model_id",
        ("'model_id' is required",),
    ),
    Broken(
        "duplicate-model-id",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL + C_MODEL},
        "m.yaml:10:",
        "models[1].model_id",
        ("duplicate model_id 'm1'", "first declared at line 6"),
    ),
    Broken(
        "absent-with-load-fields",
        {"m.yaml": COMMUNITY + "models:\n  - model_id: old\n    ensure: absent\n    url: x/y\n"},
        "m.yaml:8:",
        "models[0].url",
        ("ensure: absent takes only model_id, protect",),
    ),
    Broken(
        "bad-ensure",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL + "    ensure: gone\n"},
        "m.yaml:10:",
        "models[0].ensure",
        ("'gone' is not one of present, absent",),
    ),
    Broken(
        "community-missing-url",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL.replace("    url: org/repo\n", "")},
        "m.yaml:6:",
        "models[0]",
        ("'url' is required",),
    ),
    Broken(
        "community-missing-model-format",
        {"m.yaml": COMMUNITY + "models:\n" + C_MODEL.replace("    model_format: diffusers\n", "")},
        "m.yaml:6:",
        "models[0]",
        ("'model_format' is required",),
    ),
    Broken(
        "community-missing-model-category",
        {
            "m.yaml": COMMUNITY
            + "models:\n"
            + C_MODEL.replace("    model_category: stable_diffusion\n", "")
        },
        "m.yaml:6:",
        "models[0]",
        ("'model_category' is required",),
    ),
    Broken(
        "enterprise-missing-url",
        {"m.yaml": ENTERPRISE + "models:\n" + E_MODEL.replace("    url: org/repo\n", "")},
        "m.yaml:6:",
        "models[0]",
        ("'url' is required",),
    ),
    Broken(
        "enterprise-missing-model-type",
        {"m.yaml": ENTERPRISE + "models:\n" + E_MODEL.replace("    model_type: huggingface\n", "")},
        "m.yaml:6:",
        "models[0]",
        ("'model_type' is required",),
    ),
    Broken(
        "community-field-on-enterprise",
        {"m.yaml": ENTERPRISE + "models:\n" + E_MODEL + "    model_format: diffusers\n"},
        "m.yaml:9:",
        "models[0].model_format",
        ("unknown key 'model_format': a load field of community accounts, not of enterprise",),
    ),
    # --- every enum of both APIs lists its allowed values -------------------------------------
    enum_case("community", "model_format", "safetensor", "diffusers, safetensors, ckpt"),
    enum_case("community", "model_category", "sdxl", "stable_diffusion, stable_diffusion_xl"),
    enum_case("community", "model_subcategory", "loras", "lora"),
    enum_case("community", "model_visibility", "secret", "private, public"),
    enum_case("community", "force_load", "maybe", "yes, no"),
    enum_case("community", "revision", "fp8", "fp16, fp32"),
    enum_case("community", "hf_upload", "sometimes", "yes, no"),
    enum_case("enterprise", "model_type", "hf", "huggingface, api_trained, custom_ckpt"),
    enum_case("enterprise", "from_safetensors", "true-ish", "yes, no"),
    enum_case("enterprise", "revision", "bf16", "fp16, fp32"),
    enum_case("enterprise", "upcast_attention", "always", "yes, no"),
    # --- across files and paths ---------------------------------------------------------------
    Broken(
        "duplicate-account-across-files",
        {"a.yaml": COMMUNITY, "b.yaml": "# same name again\n" + COMMUNITY},
        "b.yaml:2:",
        "account",
        ("duplicate account 'acme'", "first declared at a.yaml:1"),
    ),
    Broken(
        "non-existent-path",
        {"m.yaml": COMMUNITY},
        "missing.yaml:1:1:",
        "",
        ("no such file or folder",),
        args=("missing.yaml",),
    ),
    Broken(
        "folder-without-yaml",
        {"empty/readme.txt": "not a manifest\n"},
        "empty:1:1:",
        "",
        ("no *.yaml manifests",),
        args=("empty",),
    ),
]


@pytest.mark.parametrize("case", BROKEN, ids=lambda case: case.id)
def test_every_problem_points_at_a_real_line_and_column(
    case: Broken, in_tree: ManifestTree, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14: line 0 is a bug; a problem with a path itself points at its line 1."""
    in_tree(case.files)

    assert run(["validate", "-o", "json", *case.args]) == 1

    problems = json.loads(capsys.readouterr().out)["problems"]
    assert problems
    assert all(p["line"] >= 1 and p["column"] >= 1 for p in problems), problems


@pytest.fixture
def in_tree(manifest_tree: ManifestTree, monkeypatch: pytest.MonkeyPatch) -> ManifestTree:
    """Like manifest_tree, and run from inside it so that messages show relative paths."""

    def build(files: Mapping[str, str]) -> Path:
        root = manifest_tree(files)
        monkeypatch.chdir(root)
        return root

    return build


def test_enough_broken_manifests() -> None:
    assert len(BROKEN) >= 35
    assert len({case.id for case in BROKEN}) == len(BROKEN)


@pytest.mark.parametrize("case", BROKEN, ids=lambda case: case.id)
def test_broken_manifest_is_reported(
    case: Broken, in_tree: ManifestTree, capsys: pytest.CaptureFixture[str]
) -> None:
    in_tree(case.files)

    code = run(["validate", *case.args])

    out, err = capsys.readouterr()
    assert code == 1, err
    assert err.rstrip().splitlines()[-1].endswith("found")  # one line a problem, then a count
    # Several problems may share a line (a missing field and a bad value of the same entry).
    at_where = [line for line in err.splitlines() if line.startswith(case.where)]
    assert at_where, f"no problem at {case.where} in:\n{err}"
    problem = next((line for line in at_where if not case.path or f": {case.path}: " in line), None)
    assert problem is not None, f"no problem with path {case.path} at {case.where} in:\n{err}"
    for fragment in case.says:
        assert fragment in problem
    assert "Traceback" not in out + err
    if case.secret:
        assert case.secret not in out + err


def test_all_problems_of_a_run_are_reported_together(
    in_tree: ManifestTree, capsys: pytest.CaptureFixture[str]
) -> None:
    in_tree(
        {
            "m.yaml": COMMUNITY
            + "prune: some\n"  # line 5
            + "models:\n"
            + C_MODEL.replace("diffusers", "diffuser")  # line 9
            + "    colour: red\n"  # line 11
        }
    )

    assert run(["validate", "m.yaml"]) == 1

    lines = capsys.readouterr().err.splitlines()
    assert lines[:3] == [
        "m.yaml:5:8: prune: 'some' is not one of none, managed, all",
        "m.yaml:9:19: models[0].model_format: 'diffuser' is not one of diffusers, safetensors, "
        "ckpt",
        "m.yaml:11:5: models[0].colour: unknown key 'colour'",
    ]
    assert lines[3:] == ["3 problems found"]


def test_problems_of_several_files_are_reported_together(
    in_tree: ManifestTree, capsys: pytest.CaptureFixture[str]
) -> None:
    in_tree({"a.yaml": "", "sub/b.yml": COMMUNITY + "prune: some\n", "c.yaml": "- x\n"})

    assert run(["validate", "."]) == 1

    err = capsys.readouterr().err
    assert "a.yaml:1:1:" in err
    assert "sub/b.yml:5:8: prune:" in err
    assert "c.yaml:1:1:" in err
    assert err.rstrip().endswith("3 problems found")


# ---------------------------------------------------------------------------------------------
# Valid manifests
# ---------------------------------------------------------------------------------------------


def test_example_manifests_are_valid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)

    assert run(["validate", "manifests/"]) == 0
    assert run(["validate"]) == 0  # manifests/ is the default

    out = capsys.readouterr().out
    assert "3 accounts valid: render-farm, studio-prod, studio-staging" in out


def test_account_narrows_the_listing_but_every_manifest_is_checked(
    monkeypatch: pytest.MonkeyPatch, in_tree: ManifestTree, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert run(["validate", "manifests", "--account", "studio-prod"]) == 0
    assert capsys.readouterr().out == "1 account valid: studio-prod\n"

    assert run(["validate", "manifests", "--account", "nope"]) == 1
    assert "unknown account nope" in capsys.readouterr().err

    in_tree({"a.yaml": COMMUNITY, "b.yaml": ENTERPRISE + "prune: some\n"})
    assert run(["validate", ".", "--account", "acme"]) == 1
    assert "b.yaml:5:8: prune:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("head", "defaults", "entry"),
    [
        (
            COMMUNITY,
            "  url: org/repo\n  model_format: diffusers\n  model_category: lora\n",
            "  - model_id: m1\n",
        ),
        (ENTERPRISE, "  url: org/repo\n  model_type: huggingface\n", "  - model_id: e1\n"),
    ],
    ids=["community", "enterprise"],
)
def test_required_fields_may_come_from_defaults(
    head: str, defaults: str, entry: str, in_tree: ManifestTree
) -> None:
    in_tree({"m.yaml": f"{head}defaults:\n{defaults}models:\n{entry}"})

    assert run(["validate", "m.yaml"]) == 0


def test_json_output_of_valid_manifests(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)

    assert run(["validate", "-o", "json", "manifests"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert document == {
        "format_version": 1,
        "valid": True,
        "accounts": ["render-farm", "studio-prod", "studio-staging"],
        "problems": [],
    }


def test_json_output_gives_the_same_problems_as_data(
    in_tree: ManifestTree, capsys: pytest.CaptureFixture[str]
) -> None:
    in_tree({"m.yaml": COMMUNITY + "prune: some\nmodels:\n" + C_MODEL + "    colour: red\n"})
    assert run(["validate", "m.yaml"]) == 1
    text_lines = capsys.readouterr().err.splitlines()[:-1]

    assert run(["validate", "-o", "json", "m.yaml"]) == 1

    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["valid"] is False
    assert document["accounts"] == []
    assert document["problems"] == [
        {
            "file": "m.yaml",
            "line": 5,
            "column": 8,
            "path": "prune",
            "message": "'some' is not one of none, managed, all",
        },
        {
            "file": "m.yaml",
            "line": 11,
            "column": 5,
            "path": "models[0].colour",
            "message": "unknown key 'colour'",
        },
    ]
    rebuilt = [
        f"{p['file']}:{p['line']}:{p['column']}: {p['path']}: {p['message']}"
        for p in document["problems"]
    ]
    assert rebuilt == text_lines
    assert err == ""
