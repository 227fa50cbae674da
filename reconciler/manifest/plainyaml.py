"""The fast reading of a plain manifest: YAML events straight to Python values, no node tree.

Keeping positions for error messages means composing PyYAML's node tree: for one account of
100k models that is over a million nodes and two ``Mark`` objects each (~700 MB, about half the
load time), then a constructor walk, a guard walk and a key walk over it. Yet almost every
manifest a run reads is valid and needs positions only for its model entries' lines.

So :func:`read_plain` reads a file's YAML *events* (freed as soon as they are read) and builds
the values in one pass, noting only each document's line and each model entry's line. It
handles the plain subset of YAML that manifests are written in: mappings with string keys,
sequences, and untagged scalars resolved exactly as PyYAML's safe loader resolves them. Anything
else (anchors, aliases, merge keys, tags, non-string or duplicate keys, keys that look like
secrets, deep nesting, a document that is not a mapping) makes it answer ``None``; the loader
then reads the file the careful way, with the node tree, the alias-bomb guard and exact
file:line:field problems. It never decides that a manifest is wrong, only that it is plain.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

#: libyaml's parser when PyYAML was built with it (ten times faster on large trees), else
#: PyYAML's own; both keep every node's line and column. The loader's careful reading uses it
#: too, so that both readings resolve scalars alike.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Mapping keys that look like an API key written into a manifest (design.md §2): not plain,
#: and a problem for the careful reading.
SECRET_KEY = re.compile(
    r"^(api[_-]?)?key$|^(enterprise|secret|private|access)[_-]?key$|"
    r"^(api[_-]?)?(secret|token)$",
    re.IGNORECASE,
)
#: Deeper than any manifest; the careful reading reports real depth problems (limit 32).
_MAX_DEPTH = 24
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class PlainDocument:
    """One document's value (a mapping) with the lines a valid manifest needs."""

    data: dict[str, Any]
    line: int
    #: The line of each item of the top-level ``models`` list, in order.
    model_lines: tuple[int, ...]


class _NotPlain(Exception):
    """Something only the careful reading handles (or reports)."""


def read_plain(
    text: str, loader_class: type[yaml.SafeLoader], secret_key: re.Pattern[str]
) -> list[PlainDocument] | None:
    """Every document of ``text``, or None when the file is not plain (see the module doc).

    ``loader_class`` is the loader the careful reading uses (its resolvers and constructors
    decide scalar values, so both readings agree); a key matching ``secret_key`` is not plain.
    """
    loader = loader_class(text)
    try:
        return _Reader(loader, secret_key).documents()
    except (_NotPlain, yaml.YAMLError, RecursionError, ValueError, OverflowError):
        return None  # the careful reading reports any problem at its line
    finally:
        loader.dispose()


class _Reader:
    """One pass over a loader's events; raises :class:`_NotPlain` at the first unusual one."""

    def __init__(self, loader: yaml.SafeLoader, secret_key: re.Pattern[str]) -> None:
        resolvers = loader.yaml_implicit_resolvers
        if loader.yaml_path_resolvers or resolvers.get(None):  # pragma: no cover
            raise _NotPlain  # the safe loaders have neither path nor catch-all resolvers
        self._loader = loader
        # Events are read as Any: the hot loop tells them apart by exact type, which mypy does
        # not narrow through a local, and PyYAML's stubs type marks as optional.
        self._next: Callable[[], Any] = loader.get_event
        self._secret_key = secret_key
        self._plain_keys: set[str] = set()
        self._resolvers = resolvers
        #: A plain scalar starting with none of these is a string (no resolver to try).
        self._special = frozenset(start for start in resolvers if start)
        self._scalars: dict[str, Any] = {}  # plain scalars that resolve to a non-string

    def documents(self) -> list[PlainDocument]:
        if type(self._next()) is not StreamStartEvent:  # pragma: no cover - always first
            raise _NotPlain
        documents: list[PlainDocument] = []
        while True:
            event = self._next()
            if type(event) is StreamEndEvent:
                return documents
            if type(event) is not DocumentStartEvent:  # pragma: no cover - YAML's grammar
                raise _NotPlain
            root: Any = self._next()
            if _is_empty(root):  # an empty document (``---`` alone): no account, skipped
                if type(self._next()) is not DocumentEndEvent:  # pragma: no cover - grammar
                    raise _NotPlain
                continue
            if type(root) is not MappingStartEvent or root.anchor is not None or root.tag:
                raise _NotPlain  # lists and scalars: the careful reading words the problem
            lines: list[int] = []
            data = self._mapping(1, lines)
            documents.append(PlainDocument(data, _line(root), tuple(lines)))
            if type(self._next()) is not DocumentEndEvent:  # pragma: no cover - grammar
                raise _NotPlain

    def _mapping(self, depth: int, model_lines: list[int] | None = None) -> dict[str, Any]:
        """The mapping whose start event was just read; ``model_lines`` only for the root."""
        if depth > _MAX_DEPTH:
            raise _NotPlain
        result: dict[str, Any] = {}
        next_event, plain_keys = self._next, self._plain_keys
        while True:
            event = next_event()
            kind = type(event)
            if kind is MappingEndEvent:
                return result
            if kind is not ScalarEvent or event.anchor is not None or event.tag is not None:
                raise _NotPlain  # aliases, anchors, tags, non-scalar keys
            key = event.value
            # The cache holds texts that, written plain, read as themselves; a quoted "yes"
            # must not vouch for a later plain yes (a bool), so only plain keys are cached.
            written_plain = event.implicit[0]
            if not (written_plain and key in plain_keys):
                if self._resolve(event) is not key or self._secret_key.fullmatch(key):
                    raise _NotPlain  # a key read as a number, bool, null or merge; a secret
                if written_plain:
                    plain_keys.add(key)
            if key in result:
                raise _NotPlain  # duplicate keys: the careful reading names both lines
            value_event = next_event()
            if (
                type(value_event) is ScalarEvent
                and value_event.anchor is None
                and value_event.tag is None
            ):  # inline what _value and _resolve do for the commonest value, a string
                value = value_event.value
                plain_string = value and value[0] not in self._special
                if plain_string or not value_event.implicit[0]:
                    result[key] = value
                else:
                    result[key] = self._resolve(value_event)
            elif (
                model_lines is not None
                and key == "models"
                and type(value_event) is SequenceStartEvent
            ):
                result[key] = self._sequence(value_event, depth + 1, model_lines)
            else:
                result[key] = self._value(value_event, depth + 1)

    def _sequence(self, start: Any, depth: int, item_lines: list[int] | None = None) -> list[Any]:
        if start.anchor is not None or start.tag is not None or depth > _MAX_DEPTH:
            raise _NotPlain
        result: list[Any] = []
        next_event = self._next
        while True:
            event = next_event()
            if type(event) is SequenceEndEvent:
                return result
            if item_lines is not None:
                item_lines.append(_line(event))
            result.append(self._value(event, depth + 1))

    def _value(self, event: Any, depth: int) -> Any:
        kind = type(event)
        if kind is ScalarEvent:
            if event.anchor is not None or event.tag is not None:
                raise _NotPlain
            return self._resolve(event)
        if kind is MappingStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise _NotPlain
            return self._mapping(depth)
        if kind is SequenceStartEvent:
            return self._sequence(event, depth)
        raise _NotPlain  # an alias

    def _resolve(self, event: Any) -> Any:
        """The scalar's value as PyYAML's composer and safe constructor would make it."""
        value: str = event.value
        if not event.implicit[0]:
            return value  # quoted: always a string
        known = self._scalars.get(value, _UNSEEN)
        if known is not _UNSEEN:
            return known
        tag = next(
            (tag for tag, pattern in self._resolvers.get(value[:1], ()) if pattern.match(value)),
            _STR_TAG,
        )
        if tag == _STR_TAG:  # no resolver matched
            return value
        constructor = self._loader.yaml_constructors.get(tag)
        if constructor is None or tag == "tag:yaml.org,2002:merge":
            raise _NotPlain
        node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
        constructed = constructor(self._loader, node)
        self._scalars[value] = constructed
        return constructed


_UNSEEN = object()


def _is_empty(event: Any) -> bool:
    """Whether a document's root event is the empty plain scalar (which YAML reads as null)."""
    return (
        type(event) is ScalarEvent
        and event.value == ""
        and event.implicit[0]
        and event.anchor is None
        and event.tag is None
    )


def _line(event: Any) -> int:
    """The 1-based line an event starts on (every event the parsers make has its marks)."""
    line: int = event.start_mark.line
    return line + 1
