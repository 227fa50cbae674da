"""The canonical JSON text that hashes are taken of: sorted keys, compact, ASCII.

A spec's hash is written into ledgers and compared on every later run, and a plan's digest
marks the pull-request comment and the saved plan file: the text they hash must never change.
It is ``json.dumps(value, sort_keys=True, separators=(",", ":"))``, exactly.

orjson writes that same text about ten times faster (issue 11: a run hashes every declared
spec, 10k and more, before its first load), as long as it has nothing to escape: both write a
string between quotes as it is, but they escape differently (``json.dumps`` writes DEL and
every non-ASCII character as ``\\uXXXX``, orjson writes them as they are). So orjson's text is
kept only when it is printable ASCII with no backslash at all, which is when no string in it
needed an escape; any other value, and anything orjson refuses (a non-string key, an integer
beyond 64 bits, a lone surrogate, a subclass), is written by ``json.dumps``.

A float is the one thing of JSON the two write differently without an escape (``1e-7`` for
``1e-07``, ``null`` for ``NaN``): what is hashed here holds none (a spec is strings, a plan
strings, booleans and integers), and :func:`canonical_json` is for such values only. Nor is
it for what ``json.dumps`` refuses and orjson writes anyway (a plain ``Enum``, a ``UUID``):
dates and dataclasses are passed to ``json.dumps``, which refuses them as it always has.
"""

from __future__ import annotations

import json
import re

import orjson

#: Printable ASCII but the backslash: a text with nothing escaped in it.
_UNESCAPED = re.compile(rb"[ -\[\]-~]*")
_SLOW = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
#: Sorted keys; what orjson would write where ``json.dumps`` refuses or writes otherwise is
#: passed through, which orjson refuses.
_PLAIN = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)


def sorted_orjson(value: object, *, indent: bool = False) -> bytes | None:
    """orjson's text of ``value``, keys sorted (indented by two if ``indent``), or None for
    what it does not take as plain JSON: a non-string key, an integer beyond 64 bits, a lone
    surrogate, a subclass, a date, a dataclass (``json.dumps`` then writes or refuses it).

    Shared by :func:`canonical_json` and the renderers' ``safe_json``.
    """
    option = _PLAIN | orjson.OPT_INDENT_2 if indent else _PLAIN
    try:
        return orjson.dumps(value, option=option)
    except TypeError:  # orjson.JSONEncodeError is one
        return None


def canonical_json(value: object) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"))`` of a value with no float
    in it (see the module)."""
    fast = sorted_orjson(value)
    if fast is not None and _UNESCAPED.fullmatch(fast):
        return fast.decode("ascii")
    return _SLOW.encode(value)
