"""The API key holder: masked everywhere, revealed only on request, read from the environment."""

from __future__ import annotations

import copy
import pickle

import pytest

from reconciler.api.secret import ApiKey, key_from_env
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
