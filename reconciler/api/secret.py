"""The one holder of an API key.

An :class:`ApiKey` keeps the key's value out of every ``repr``, ``str``, log line, exception
and comparison; only :meth:`ApiKey.reveal` gives it back, and only the client calls it, when
it builds a request body. Keys come from the environment variable a manifest names
(:func:`key_from_env`); a manifest never holds one.

This module must not log, print or persist a key, nor compare keys by value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

from reconciler.errors import ConfigError

MASK = "****"


class ApiKey:
    """An API key whose value shows nowhere but in :meth:`reveal`."""

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        self.__value = value

    def reveal(self) -> str:
        """The key itself; call this only to build a request body."""
        return self.__value

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by a mask."""
        return text.replace(self.__value, MASK) if self.__value else text

    def __repr__(self) -> str:
        return f"ApiKey({MASK})"

    __str__ = __repr__

    def __copy__(self) -> ApiKey:
        return self  # immutable: copies (and ``dataclasses.asdict``) share the one holder

    def __deepcopy__(self, memo: dict[int, object]) -> ApiKey:
        return self

    def __reduce__(self) -> NoReturn:
        # Pickling would write the value to disk or a pipe; keys stay in memory.
        raise TypeError("an ApiKey cannot be pickled")


def key_from_env(account: str, key_env: str, environ: Mapping[str, str]) -> ApiKey:
    """The key of ``account`` from the variable ``key_env`` of ``environ``.

    Raises:
        ConfigError: the variable is not set, or is empty.
    """
    value = environ.get(key_env, "").strip()
    if not value:
        raise ConfigError(
            f"{account}: environment variable {key_env} is not set (it holds the account's API key)"
        )
    return ApiKey(value)
