"""The one holder of an API key, and the redaction of secrets from text.

An :class:`ApiKey` keeps the key's value out of every ``repr``, ``str``, log line, exception
and comparison; only :meth:`ApiKey.reveal` gives it back, and only the client calls it, when
it builds a request body. Keys come from the environment variable a manifest names
(:func:`key_from_env`); a manifest never holds one.

Text from outside (the API's messages, field names, model ids, transport errors) may carry a
key back, and a base URL may carry a password (``http://user:PASS@host/api/``): :meth:`ApiKey.mask`
removes a key in every form this tool can recognise (exact, in another case, a truncated run of
it), :func:`redact_url_credentials` removes the user-info part of URLs, and
:func:`install_log_redaction` applies both to every log record of the process, whichever library
wrote it (httpx logs each request's URL).

This module must not log, print or persist a key, nor compare keys by value.
"""

from __future__ import annotations

import contextlib
import logging
import re
import weakref
from collections.abc import Mapping
from typing import Any, NoReturn

from reconciler.errors import ConfigError

MASK = "****"

#: A run of at least this many characters of a key (in any case) is masked: an API that
#: truncates the key it echoes still does not print it. Shorter keys are masked whole only.
MIN_FRAGMENT = 12

#: Every key made in this process, so that log records can be masked whatever logged them.
_LIVE_KEYS: weakref.WeakSet[ApiKey] = weakref.WeakSet()

#: ``scheme://userinfo@``: the user-info part is dropped from any URL shown or logged.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s?#@]*@")

#: What a key variable's name looks like by convention (upper case, at most 64 characters); a
#: ``key_env`` that does not is never echoed, since it may be a key pasted there by mistake
#: (``sk_live_…`` is a valid variable name, but not a conventional one).
_VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


class ApiKey:
    """An API key whose value shows nowhere but in :meth:`reveal`."""

    __slots__ = ("__lowered", "__probes", "__value", "__weakref__")

    def __init__(self, value: str) -> None:
        self.__value = value
        self.__lowered = _lower(value)
        half = MIN_FRAGMENT // 2
        # Every run of MIN_FRAGMENT characters of the key holds one of these aligned probes
        # (a run starting at i holds the probe starting at the next multiple of `half`).
        self.__probes = (
            tuple({self.__lowered[j : j + half] for j in range(0, len(value) - half + 1, half)})
            if len(value) >= MIN_FRAGMENT
            else ()
        )
        if value:
            _LIVE_KEYS.add(self)

    def reveal(self) -> str:
        """The key itself; call this only to build a request body."""
        return self.__value

    def mask(self, text: str) -> str:
        """``text`` with the key replaced by a mask in every form recognised.

        The whole key in any case, and any run of at least :data:`MIN_FRAGMENT` characters of
        it (a truncated echo). Cost: a few ``str.find`` passes over ``text``, so a listing of
        100k models is masked in well under a second.
        """
        if not self.__value or not text:
            return text
        lowered = _lower(text)
        spans = self._exact_spans(lowered) + self._fragment_spans(lowered)
        if not spans:
            return text
        return _replace_spans(text, spans)

    def _exact_spans(self, lowered: str) -> list[tuple[int, int]]:
        key, spans, at = self.__lowered, [], lowered.find(self.__lowered)
        while at >= 0:
            spans.append((at, at + len(key)))
            at = lowered.find(key, at + len(key))
        return spans

    def _fragment_spans(self, lowered: str) -> list[tuple[int, int]]:
        key, spans = self.__lowered, []
        for probe in self.__probes:
            at = lowered.find(probe)
            while at >= 0:
                start, end = at, at + len(probe)
                while start > 0 and lowered[start - 1 : end] in key:
                    start -= 1
                while end < len(lowered) and lowered[start : end + 1] in key:
                    end += 1
                if end - start >= MIN_FRAGMENT:
                    spans.append((start, end))
                at = lowered.find(probe, at + 1)
        return spans

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


def _lower(text: str) -> str:
    """``text`` lower-cased character by character, so that indexes still match ``text``."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _replace_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each (merged) span replaced by :data:`MASK`."""
    pieces: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if end <= done:
            continue
        pieces.append(text[done:start] if start > done else "")
        if start >= done:
            pieces.append(MASK)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def redact_url_credentials(text: str) -> str:
    """``text`` with the user-info (``user:password@``) of every URL in it replaced."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def redact(text: str) -> str:
    """``text`` without URL credentials and without any key this process holds."""
    text = redact_url_credentials(text)
    for key in list(_LIVE_KEYS):
        text = key.mask(text)
    return text


def key_from_env(account: str, key_env: str, environ: Mapping[str, str]) -> ApiKey:
    """The key of ``account`` from the variable ``key_env`` of ``environ``.

    A ``key_env`` that is not a conventional variable name is never echoed: it may be a key
    pasted there by mistake.

    Raises:
        ConfigError: the variable is not set, or is empty.
    """
    value = environ.get(key_env, "").strip()
    if not value:
        if _VARIABLE_NAME.fullmatch(key_env):
            raise ConfigError(
                f"{account}: environment variable {key_env} is not set "
                "(it holds the account's API key)"
            )
        raise ConfigError(
            f"{account}: the environment variable that key_env names is not set (its name is "
            "not shown: it is not an upper-case variable name, so it may be a key pasted by "
            "mistake; put the key in a variable and name that variable in key_env)"
        )
    return ApiKey(value)


# ---------------------------------------------------------------------------------------------
# Logging: every record of the process is redacted when it is made
# ---------------------------------------------------------------------------------------------


class _RedactingFactory:
    """A log record factory that formats each record's message and redacts it at once.

    A record factory, not a handler filter: it holds whichever handlers are attached (the
    CLI's stderr handler, pytest's capture, a user's) and whichever library logs (httpx puts
    each request's URL, with its user-info, into an INFO line).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: let the handler report it
            return record
        if redact(message) == message:
            return record  # untouched: some formatters read ``args`` (uvicorn's access log)
        if isinstance(record.args, tuple):  # keep the shape: redact each argument
            record.msg = redact(str(record.msg))
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
            with contextlib.suppress(Exception):
                if redact(record.getMessage()) == record.getMessage():
                    return record
        record.msg, record.args = redact(message), None
        return record


def install_log_redaction() -> None:
    """Redact URL credentials and every live key from all log records, once per process."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))
