"""Attacks on keys: a pull request's manifest tries to send a key somewhere, or to read one
it should not (issue 9, "Keys go only where the operator says"; issue 14, a key pasted into
``key_env``).

Each attack runs the real command in-process over real HTTP; the attacker is a loopback
listener that every host name resolves to. The key must never arrive, nor be printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .security_support import Cli, Listener, manifest, write

COMMANDS = [("plan",), ("plan", "-o", "json"), ("apply",), ("status",)]

#: Foreign bases, each naming the listener's port (``{port}``) so that on a tool that sends
#: the key anyway, it would really arrive.
FOREIGN_BASES = [
    "http://attacker.example:{port}/api/",
    "http://localhost.attacker.example:{port}/api/",
    "http://127.0.0.1.attacker.example:{port}/api/",
    "http://modelslab.com.attacker.example:{port}/api/",
    "http://modelslab.com:{port}/api/",  # the official host, but clear text and another port
    "http://stablediffusionapi.com:{port}/api/",
    "http://attacker.example@127.0.0.1:{port}/api/",  # userinfo, however harmless it looks
    "http://127.0.0.1:{port}@attacker.example:{port}/api/",
    "HTTP://ATTACKER.EXAMPLE:{port}/api/",
]


@pytest.fixture
def stolen_key(monkeypatch: pytest.MonkeyPatch, canary: str) -> str:
    """Another account's key, in the variable a hostile manifest names."""
    monkeypatch.setenv("MODELSLAB_KEY_STUDIO_PROD", canary)
    return canary


def assert_never_sent(listener: Listener, text: str, key: str) -> None:
    assert listener.received == []
    assert key not in text
    assert "Traceback" not in text


@pytest.mark.usefixtures("any_host_is_loopback")
@pytest.mark.parametrize("base", FOREIGN_BASES)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_manifest_cannot_send_a_key_to_a_foreign_host(
    cli: Cli,
    workdir: Path,
    listener: Listener,
    stolen_key: str,
    base: str,
    command: tuple[str, ...],
) -> None:
    write(workdir / "manifests/evil.yaml", manifest(api_base=base.format(port=listener.port)))

    result = cli(*command, "manifests")

    assert result.code == 1
    assert "manifests/evil.yaml:5:11: api_base:" in result.err
    assert_never_sent(listener, result.text, stolen_key)


@pytest.mark.usefixtures("any_host_is_loopback")
def test_the_operators_api_base_does_not_let_a_manifest_choose_another(
    cli: Cli, workdir: Path, listener: Listener, stolen_key: str
) -> None:
    """Issue 9: "Passing --api-base in CI does not help: the manifest's value wins"."""
    evil = listener.url("attacker.example")
    write(workdir / "manifests/evil.yaml", manifest(api_base=evil))

    result = cli("--api-base", "https://modelslab.com/api/", "plan", "manifests")

    assert result.code == 1
    assert "--allow-api-base" in result.err  # the message says how to allow a base
    assert_never_sent(listener, result.text, stolen_key)


@pytest.mark.usefixtures("any_host_is_loopback")
@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_allow_list_admits_only_what_it_names(
    cli: Cli,
    workdir: Path,
    listener: Listener,
    stolen_key: str,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed = ["https://models.corp.example/api/", "https://eu.models.corp.example/api/"]
    if how == "flag":
        options = [arg for base in allowed for arg in ("--allow-api-base", base)]
    else:
        options = []
        monkeypatch.setenv("RECONCILER_ALLOWED_API_BASES", f"{allowed[0]}, {allowed[1]}")
    write(workdir / "ok/a.yaml", manifest("a", api_base=allowed[1]))
    write(workdir / "ok/b.yaml", manifest("b", api_base="https://models.corp.example/api/v2/"))
    write(workdir / "evil/evil.yaml", manifest(api_base=listener.url("attacker.example")))

    assert cli(*options, "validate", "ok").code == 0
    result = cli(*options, "plan", "ok", "evil")

    assert result.code == 1
    assert "evil/evil.yaml:5:11: api_base:" in result.err
    assert "ok/" not in result.err
    assert_never_sent(listener, result.text, stolen_key)


@pytest.mark.parametrize(
    "variable", ["GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "ACTIONS_RUNTIME_TOKEN", "HOME"]
)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_manifest_cannot_name_a_variable_outside_the_operators_pattern(
    cli: Cli,
    workdir: Path,
    listener: Listener,
    canary: str,
    variable: str,
    command: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The listener is on loopback (an allowed base): only the key_env rule stops the theft."""
    monkeypatch.setenv(variable, canary)
    write(workdir / "manifests/evil.yaml", manifest(key_env=variable, api_base=listener.url()))

    result = cli(*command, "manifests")

    assert result.code == 1
    assert "manifests/evil.yaml:4:10: key_env:" in result.err
    assert "--key-env-pattern" in result.err
    assert variable not in result.err  # the value is hidden, whatever it is
    assert_never_sent(listener, result.text, canary)


def test_the_operator_chooses_the_pattern(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workdir / "m/ci.yaml", manifest(key_env="CI_KEY_STUDIO"))

    assert cli("validate", "m").code == 1
    assert cli("--key-env-pattern", "CI_KEY_[A-Z_]+", "validate", "m").code == 0
    monkeypatch.setenv("RECONCILER_KEY_ENV_PATTERN", "CI_KEY_[A-Z_]+")
    assert cli("validate", "m").code == 0
    # a whole-name match: a pattern for a prefix does not admit names that merely contain it
    monkeypatch.setenv("RECONCILER_KEY_ENV_PATTERN", "KEY_[A-Z_]+")
    assert cli("validate", "m").code == 1

    bad = cli("--key-env-pattern", "([", "validate", "m")
    assert bad.code == 1
    assert "invalid --key-env-pattern" in bad.err


@pytest.mark.parametrize(
    "pasted",
    [
        "sk_live_51Hx9fQ2eZvKYlo2CanaryValue",  # a valid variable name, but not an allowed one
        "sk-live-51Hx9fQ2eZvKYlo2CanaryValue",  # not a variable name at all
        "x" * 100_000,
    ],
    ids=["underscores", "dashes", "huge"],
)
@pytest.mark.parametrize(
    "command", [("validate",), ("validate", "-o", "json"), *COMMANDS], ids=" ".join
)
def test_a_key_pasted_into_key_env_is_never_echoed(
    cli: Cli, workdir: Path, pasted: str, command: tuple[str, ...]
) -> None:
    write(workdir / "manifests/m.yaml", manifest(key_env=pasted))

    result = cli(*command, "manifests")

    assert result.code == 1
    assert "key_env" in result.text
    assert "(value hidden)" in result.text
    assert pasted[:20] not in result.text


@pytest.mark.parametrize(
    ("base", "says"),
    [
        ("http://user:S3cretPw@127.0.0.1:{port}/api/", "user name or password"),
        ("http://127.0.0.1:99999/api/", "port 99999"),
        ("http://127.0.0.1:{port}/api/?key=1", "query"),
        ("http://127.0.0.1:{port}/api/#x", "fragment"),
        ("http://[::1", "IPv6"),
        ("ftp://127.0.0.1/api/", "scheme"),
        ("//127.0.0.1/api/", "not an absolute URL"),
        ("http://example.com/api/", "plain http:// is allowed only to loopback"),
    ],
)
def test_the_operators_api_base_is_checked_before_any_request(
    cli: Cli, workdir: Path, listener: Listener, stolen_key: str, base: str, says: str
) -> None:
    write(workdir / "manifests/m.yaml", manifest())

    for command in ("validate", "plan", "status"):
        result = cli("--api-base", base.format(port=listener.port), command, "manifests")

        assert result.code == 1, result.text
        assert "invalid API base URL" in result.err
        assert says in result.err
        assert "S3cretPw" not in result.text
        assert_never_sent(listener, result.text, stolen_key)


@pytest.mark.parametrize(
    ("base", "says"),
    [
        ("http://127.0.0.1:99999/api/", "the port 99999 is not in 1-65535"),
        ("http://127.0.0.1:8080/api/?x=1", "query"),
        ("http://127.0.0.1:8080/api/#top", "fragment"),
        ("http://[::1", "not closed"),
        ("http://user:S3cretPw@127.0.0.1:8080/api/", "user name or password"),
        ("https://attacker.example/api/", "not an official API base"),
        ("http://10.0.0.8/api/", "plain http://"),
    ],
)
def test_validate_refuses_what_plan_would_refuse(
    cli: Cli, workdir: Path, base: str, says: str
) -> None:
    write(workdir / "manifests/m.yaml", manifest(api_base=base))

    result = cli("validate", "-o", "json", "manifests")

    assert result.code == 1
    assert '"path": "api_base"' in result.out
    assert says in result.out
    assert '"line": 5' in result.out
    assert "S3cretPw" not in result.text


@pytest.mark.parametrize(
    "base",
    [
        "https://modelslab.com/api/",
        "https://stablediffusionapi.com/api/",
        "https://MODELSLAB.com:443/api/",
        "http://127.0.0.1:8080/api/",
        "http://127.9.9.9:8080/api/",
        "http://localhost:8080/api/",
        "http://[::1]:8080/api/",
    ],
)
def test_official_and_loopback_bases_are_allowed_by_default(
    cli: Cli, workdir: Path, base: str
) -> None:
    write(workdir / "manifests/m.yaml", manifest(api_base=base))

    assert cli("validate", "manifests").code == 0
