"""The API key holder: masked everywhere, revealed only on request, read from the environment."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest

from reconciler.api.client import ApiClient, normalise_api_base
from reconciler.api.secret import (
    ApiKey,
    install_log_redaction,
    key_from_env,
    redact_url_credentials,
)
from reconciler.errors import ConfigError


def test_a_key_is_masked_in_repr_str_and_format(canary: str) -> None:
    key = ApiKey(canary)
    assert repr(key) == str(key) == f"{key}" == f"{key!r}" == "ApiKey(****)"
    assert canary not in repr([key, {"k": key}])


def test_a_key_is_revealed_only_on_request(canary: str) -> None:
    assert ApiKey(canary).reveal() == canary


def test_keys_compare_by_identity_not_by_value(canary: str) -> None:
    one, two = ApiKey(canary), ApiKey(canary)
    assert one == one
    assert one != two  # an equality test would let a caller probe the value


def test_a_key_has_no_attribute_dict(canary: str) -> None:
    key = ApiKey(canary)
    assert not hasattr(key, "__dict__")
    with pytest.raises(AttributeError):
        key.other = "x"  # type: ignore[attr-defined]


def test_mask_removes_the_key_from_text(canary: str) -> None:
    assert ApiKey(canary).mask(f"bad key {canary}!") == "bad key ****!"
    assert ApiKey("").mask("text") == "text"


def test_key_from_env(canary: str) -> None:
    key = key_from_env("studio-prod", "MODELSLAB_KEY", {"MODELSLAB_KEY": f" {canary}\n"})
    assert key.reveal() == canary


@pytest.mark.parametrize("environ", [{}, {"MODELSLAB_KEY": ""}, {"MODELSLAB_KEY": "  "}])
def test_a_missing_key_is_a_config_error(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        key_from_env("studio-prod", "MODELSLAB_KEY", environ)
    assert str(caught.value) == (
        "studio-prod: environment variable MODELSLAB_KEY is not set "
        "(it holds the account's API key)"
    )


def test_a_key_can_be_copied_but_not_pickled(canary: str) -> None:
    key = ApiKey(canary)
    assert copy.copy(key) is key
    assert copy.deepcopy({"key": key})["key"] is key
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)


def test_a_key_env_that_is_not_a_variable_name_is_not_echoed() -> None:
    pasted = "sk_live_0123456789abcdefFEDCBA"
    with pytest.raises(ConfigError) as caught:
        key_from_env("studio-prod", pasted, {})
    assert pasted not in str(caught.value)
    assert "studio-prod: the environment variable that key_env names is not set" in str(
        caught.value
    )


def test_url_credentials_are_redacted() -> None:
    text = "bad http://user:PASS@127.0.0.1:99999/api/ and HTTPS://tok@x.example/api/ ok"
    assert redact_url_credentials(text) == (
        "bad http://****@127.0.0.1:99999/api/ and HTTPS://****@x.example/api/ ok"
    )
    assert redact_url_credentials("https://modelslab.com/api/") == "https://modelslab.com/api/"


def test_every_log_record_is_redacted(canary: str, caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    key = ApiKey(canary)
    with caplog.at_level(logging.INFO):
        logging.getLogger("httpx").info("HTTP Request: POST %s", "http://u:PASS@h/api/v3/x")
        logging.getLogger("anything").warning("echo %s and %s", canary.lower(), canary[:-2])
    assert "PASS" not in caplog.text
    assert canary.lower() not in caplog.text.lower()
    assert canary[:-2].lower() not in caplog.text.lower()
    assert "http://****@h/api/v3/x" in caplog.text
    del key


def test_a_bad_base_url_error_does_not_show_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        normalise_api_base("http://user:PASS@127.0.0.1:99999/api/")
    assert "PASS" not in str(caught.value)
    assert "http://****@127.0.0.1:99999/api/" in str(caught.value)


@pytest.mark.anyio
async def test_an_account_client_repr_does_not_show_a_password(canary: str) -> None:
    async with ApiClient() as client:
        account = client.account("a", "community", ApiKey(canary), "http://u:PASS@h/api/")
        assert "PASS" not in repr(account)
        assert canary not in repr(account)


def test_log_records_keep_their_arguments(caplog: pytest.LogCaptureFixture) -> None:
    """Formatters that read ``record.args`` (uvicorn's access log) still find them."""
    install_log_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("uvicorn.access").info("%s %s", "127.0.0.1", "POST /api/")
        logging.getLogger("x").info("%s at %s", "http://u:PASS@h/api/", "now")
    # only this test's two records: a worker's other tests may log from their threads meanwhile
    plain, redacted = [r for r in caplog.records if r.name in ("uvicorn.access", "x")]
    assert plain.args == ("127.0.0.1", "POST /api/")
    assert redacted.args == ("http://****@h/api/", "now")
