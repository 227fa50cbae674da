"""The operator's trust policy as pure data: URL grammar, allowed bases, key_env names."""

from __future__ import annotations

import pytest

from reconciler.errors import ConfigError
from reconciler.manifest.policy import (
    DEFAULT_KEY_ENV_PATTERN,
    Origin,
    TrustPolicy,
    operator_policy,
    parse_api_base,
    redact_url,
)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://modelslab.com/api/", Origin("https", "modelslab.com", 443, "/api/")),
        ("https://ModelsLab.COM:443/api", Origin("https", "modelslab.com", 443, "/api/")),
        ("http://127.0.0.1:8080/api/", Origin("http", "127.0.0.1", 8080, "/api/")),
        ("http://[0:0::1]:9/", Origin("http", "[::1]", 9, "/")),
        ("HTTP://localhost", Origin("http", "localhost", 80, "/")),
    ],
)
def test_usable_bases_are_parsed_to_one_canonical_origin(url: str, origin: Origin) -> None:
    assert parse_api_base(url) == origin


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://modelslab.com/api/?x=1", "query"),
        ("https://modelslab.com/api/#x", "fragment"),
        ("https://u:p@modelslab.com/api/", "user name or password"),
        ("https://modelslab.com@evil.example/api/", "user name or password"),
        ("https://evil.example\\@modelslab.com/api/", "backslash"),
        ("https://modelslab.com /api/", "whitespace"),
        ("https://modelslab.com:0/api/", "port 0"),
        ("https://modelslab.com:65536/api/", "port 65536"),
        ("https://modelslab.com:８０/api/", "port is not a number"),
        ("https://modelslab.com:/api/", "port is not a number"),
        ("https:///api/", "no host"),
        ("https://-bad-.example/api/", "not a valid host name"),
        ("https://modelslab.com./api/", "not a valid host name"),
        ("http://[::1/api/", "not closed"),
        ("http://[nope]/api/", "not a valid IPv6"),
        ("http://[::1]x/api/", "after the IPv6"),
        ("file:///etc/passwd", "scheme"),
        ("modelslab.com/api/", "not an absolute URL"),
        ("https://" + "a" * 3000 + ".com/", "longer than"),
    ],
)
def test_unusable_bases_say_why(url: str, why: str) -> None:
    problem = parse_api_base(url)

    assert isinstance(problem, str)
    assert why in problem


def test_redact_url_hides_userinfo_and_bounds_length() -> None:
    assert redact_url("http://me:pw@127.0.0.1:8/api/?a=b") == "http://***@127.0.0.1:8/api/?a=b"
    assert redact_url("https://x.example/\x1b[2J") == "https://x.example/?[2J"
    assert len(redact_url("https://x.example/" + "a" * 500)) == 120


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://modelslab.com/api/", True),
        ("https://modelslab.com/api/v6/", True),  # at or under an allowed path
        ("https://modelslab.com/", False),  # above it
        ("https://modelslab.com:8443/api/", False),
        ("http://modelslab.com/api/", False),
        ("https://stablediffusionapi.com/api/", True),
        ("https://api.modelslab.com/api/", False),
        ("http://localhost:1/x/", True),
        ("https://127.200.0.1/", True),
        ("http://[::1]:8080/api/", True),
        ("http://localhost.attacker.example/api/", False),
        ("http://127.0.0.1.nip.io/api/", False),
        ("http://2130706433/api/", False),  # 127.0.0.1 as one number: a name, not loopback
        ("http://0.0.0.0:8080/api/", False),
    ],
)
def test_default_policy(url: str, allowed: bool) -> None:
    assert (TrustPolicy().api_base_problem(url) is None) is allowed


def test_operator_bases_extend_the_policy() -> None:
    policy = operator_policy(
        "https://proxy.corp.example/modelslab/",
        ["https://a.example/api/, https://b.example/api/", "https://c.example/api/"],
    )

    for base in ("https://proxy.corp.example/modelslab/", "https://c.example/api/v1/"):
        assert policy.api_base_problem(base) is None
    assert policy.api_base_problem("https://b.example/api/") is None
    assert "--allow-api-base" in (policy.api_base_problem("https://d.example/api/") or "")


@pytest.mark.parametrize(
    ("api_base", "allowed", "says"),
    [
        ("http://u:SECRETPW@127.0.0.1/api/", (), "user name or password"),
        (None, ("https://ok.example/api/ http://lan.example/api/",), "plain http://"),
        (None, ("https://ok.example/api/?x",), "query"),
    ],
)
def test_operator_bases_are_checked(
    api_base: str | None, allowed: tuple[str, ...], says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        operator_policy(api_base, allowed)

    assert "SECRETPW" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("MODELSLAB_KEY_STUDIO", None),
        ("MODELSLAB_", "outside the operator's pattern"),
        ("GITHUB_TOKEN", "outside the operator's pattern"),
        ("XMODELSLAB_KEY", "outside the operator's pattern"),
        ("sk-live-123", "not a valid variable name"),
        ("MODELSLAB_" + "K" * 200, "longer than 128"),
    ],
)
def test_key_env_names(name: str, says: str | None) -> None:
    problem = TrustPolicy().key_env_problem(name)

    if says is None:
        assert problem is None
    else:
        assert problem is not None and says in problem and "(value hidden)" in problem
        assert name not in problem.replace(DEFAULT_KEY_ENV_PATTERN, "")


def test_the_key_env_pattern_is_the_operators() -> None:
    policy = operator_policy(key_env_pattern="CI_[A-Z]+")

    assert policy.key_env_problem("CI_KEY") is None
    assert policy.key_env_problem("MODELSLAB_KEY") is not None
    assert operator_policy().key_env_pattern == DEFAULT_KEY_ENV_PATTERN
    with pytest.raises(ConfigError, match="invalid --key-env-pattern"):
        operator_policy(key_env_pattern="(")
