"""Read manifest files into validated accounts, or one error listing every problem.

It reads the files that the named paths stand for (:mod:`reconciler.manifest.files`: ``*.yaml``
and ``*.yml``, recursively, with its guards), parses every YAML document while keeping each
node's position (plain ones the fast way, perhaps already parsed in a second process:
:mod:`reconciler.manifest.prefetch`), and
translates PyYAML and pydantic errors at this boundary into :class:`ManifestProblem` entries
that name the file, line, column and field path. Nothing raised by PyYAML or pydantic escapes;
problems of all files are collected and raised together as one :class:`ManifestError`.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import json
import os
import re
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from reconciler.api.kinds import API_KINDS, ApiKind
from reconciler.errors import ManifestError, ManifestProblem
from reconciler.manifest import models, plainyaml, prefetch
from reconciler.manifest.files import (
    DEFAULT_MANIFEST_PATHS,
    display_path,
    manifest_files,
    read_manifest_text,
)
from reconciler.manifest.models import LoadedAccount
from reconciler.manifest.policy import TrustPolicy

__all__ = ["DEFAULT_MANIFEST_PATHS", "collector_paused", "load_manifests"]

#: Mapping keys that look like an API key written into a manifest (shared with the fast reading).
_SECRET_KEY = plainyaml.SECRET_KEY
#: Bounds on a document's node graph: real manifests are a few levels deep; deeper is a mistake.
#: Aliases may add at most as many nodes as the document has or this many, whichever is more:
#: beyond that is an alias bomb, reported before anything walks the expanded tree.
_MAX_DEPTH = 32
_MAX_ALIAS_NODES = 100_000

Location = tuple[str | int, ...]


def load_manifests(
    paths: Sequence[str | os.PathLike[str]], policy: TrustPolicy | None = None
) -> tuple[LoadedAccount, ...]:
    """Load every account declared under ``paths``; raise one ManifestError for all problems.

    ``policy`` is the operator's trust policy (default: :class:`TrustPolicy`'s defaults); an
    ``api_base`` or ``key_env`` outside it is a problem like any other, at its file and line.
    """
    problems: list[ManifestProblem] = []
    accounts: list[LoadedAccount] = []
    with collector_paused():
        try:
            for file in manifest_files(paths, problems):
                accounts.extend(_load_file(file, problems, policy or TrustPolicy()))
        finally:
            prefetch.finish()  # the rest of what was parsed ahead is of no use now
    _KEYS_SEEN.clear()  # documents whose keys were never walked (a later document failed)
    problems.extend(_duplicate_accounts(accounts))
    if problems:
        unique = dict.fromkeys(map(_one_line, problems))  # aliases can repeat a problem
        raise ManifestError(sorted(unique, key=lambda p: (p.file, p.line, p.column)))
    return tuple(sorted(accounts, key=lambda a: a.name))


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while manifests are parsed and walked.

    A large manifest is millions of small objects (nodes, marks, values), none of them
    cyclic, and every collection over a heap that large walks all of them: at 100k models
    collections were over half the load time, growing faster than the input. Memory is still
    freed as usual (reference counting); cycles are collected once the pause ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_file(
    path: Path, problems: list[ManifestProblem], policy: TrustPolicy
) -> list[LoadedAccount]:
    name = display_path(path)
    text = read_manifest_text(path, name, problems)
    if text is None:
        return []
    plain = _load_plain(name, text, policy)
    if plain is not None:
        return plain
    try:
        documents = list(_parse_documents(text))
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(name, text, exc))
        return []
    except _GraphProblem as exc:
        problems.append(ManifestProblem(name, exc.line, exc.column, "", str(exc)))
        return []
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        problems.append(ManifestProblem(name, 1, 1, "", f"nested deeper than {_MAX_DEPTH} levels"))
        return []
    if not any(data is not None for _, data in documents):
        problems.append(ManifestProblem(name, 1, 1, "", "empty manifest: no account declared"))
        return []
    accounts = []
    for node, data in documents:
        if data is None:
            continue
        account = _load_document(name, node, data, problems, policy)
        if account is not None:
            accounts.append(account)
    return accounts


def _load_plain(name: str, text: str, policy: TrustPolicy) -> list[LoadedAccount] | None:
    """The file's accounts when it is plain YAML and valid throughout, else None.

    The fast reading (:mod:`reconciler.manifest.plainyaml`) builds values without a node
    tree; every check of the careful reading runs on them, and at the first problem the whole
    file is read again the careful way, which reports it (and every other) at file:line.
    """
    ahead = prefetch.parsed(text)  # read in a second process as the command line started
    documents = (
        ahead.documents if ahead is not None else plainyaml.read_plain(text, _Loader, _SECRET_KEY)
    )
    if not documents:
        return None
    accounts = []
    for document in documents:
        data = document.data
        if (
            not _policy_allows(data, policy)
            or _has_duplicate_model_ids(data.get("models"))
            or models.missing_required(data)
            or models.placeholder_problems(data)
        ):
            return None
        try:
            account = models.ACCOUNT_ADAPTER.validate_python(data)
        except ValidationError:
            return None
        lines = document.model_lines
        model_lines = {entry.model_id: lines[i] for i, entry in enumerate(account.models)}
        accounts.append(LoadedAccount(account, name, document.line, model_lines))
    return accounts


#: The careful reading's loader: the fast reading's, so that both resolve scalars alike.
_Loader = plainyaml.SAFE_LOADER


def _parse_documents(text: str) -> Iterator[tuple[yaml.Node, Any]]:
    """Yield each document's node tree (for positions) and its Python value."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node() promised a document
                break
            _check_graph(node)
            try:
                data = loader.construct_document(node)
            except _CONSTRUCTION_ERRORS as exc:  # a date that does not exist: 2020-13-45
                raise _unconstructible(node) from exc
            yield node, data
    finally:
        loader.dispose()


#: What PyYAML's safe constructors raise for a scalar they cannot build: ``2020-13-45``
#: (ValueError), ``!!int ""`` (IndexError), ``!!bool maybe`` (KeyError), ``!!timestamp x``
#: (AttributeError).
_CONSTRUCTION_ERRORS = (ValueError, OverflowError, LookupError, AttributeError, TypeError)


def _unconstructible(root: yaml.Node) -> _GraphProblem:
    """The first scalar of ``root`` that PyYAML's constructors refuse, as a problem at its line.

    Nothing from PyYAML may escape the loader (its errors quote the value, which may be a
    key: ``api_key: !!bool sk-…``). The message names the token only, never more of the file,
    and not even the token when it is the value of a secret-looking key.
    """
    constructor = _Loader("")  # a fresh one: the failed one holds the half-built document
    try:
        stack: list[tuple[yaml.Node, bool]] = [(root, False)]
        while stack:
            node, secret = stack.pop()
            if isinstance(node, yaml.ScalarNode):
                try:
                    constructor.construct_object(node)
                except _CONSTRUCTION_ERRORS:
                    token = "the value" if secret else repr(node.value)
                    return _GraphProblem(node, f"{token} is not a valid {_tag_name(node)}")
            stack.extend(reversed(_children_marking_secrets(node)))
    finally:
        constructor.dispose()
    return _GraphProblem(root, "a value cannot be read")


def _children_marking_secrets(node: yaml.Node) -> list[tuple[yaml.Node, bool]]:
    """``node``'s children, each with whether it is the value of a secret-looking key."""
    if not isinstance(node, yaml.MappingNode):
        return [(child, False) for child in _children(node)]
    marked: list[tuple[yaml.Node, bool]] = []
    for key, value in node.value:
        secret = isinstance(key, yaml.ScalarNode) and bool(_SECRET_KEY.search(str(key.value)))
        marked += [(key, False), (value, secret)]
    return marked


def _tag_name(node: yaml.ScalarNode) -> str:
    """``timestamp`` for ``tag:yaml.org,2002:timestamp``: what PyYAML took the token for."""
    return node.tag.rsplit(":", 1)[-1] if node.tag else "value"


class _GraphProblem(Exception):
    """A document whose node graph cannot be a manifest (cyclic, too deep, too large)."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.line, self.column = _position(node)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


KeyVisit = tuple[Location, yaml.ScalarNode, yaml.MappingNode]
#: Every mapping key of a document, in document order, as the guard's walk found them: the
#: one walk over the nodes serves both the guard and :func:`_walk_keys`, which takes the entry
#: out (its value refers to its key, so an entry left here would keep the whole tree alive).
_KEYS_SEEN: weakref.WeakKeyDictionary[yaml.Node, list[KeyVisit]] = weakref.WeakKeyDictionary()


def _check_graph(root: yaml.Node) -> None:
    """Refuse cyclic aliases, deep nesting and alias bombs before anything walks the tree.

    The size limit is on what aliases *add*, not on honest size: a document of a million
    written nodes is fine (one account of 100k models), a few lines of anchors that expand to
    a billion are not. One iterative pass over the written nodes checks depth and notes every
    mapping key for :func:`_walk_keys`; only when a node is reached twice (an alias) does
    :func:`_check_expansion` count what the aliases expand to.
    """
    keys: list[KeyVisit] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int, Location]] = [(root, 0, ())]
    mapping, sequence = yaml.MappingNode, yaml.SequenceNode
    while stack:
        node, depth, loc = stack.pop()
        if id(node) in seen:
            _check_expansion(root, len(seen))
            return
        seen.add(id(node))
        if depth >= _MAX_DEPTH:
            raise _GraphProblem(node, f"nested deeper than {_MAX_DEPTH} levels")
        if isinstance(node, mapping):
            pairs = node.value
            for key_node, value_node in reversed(pairs):
                if isinstance(key_node, yaml.ScalarNode):
                    stack.append((value_node, depth + 1, (*loc, key_node.value)))
                    stack.append((key_node, depth + 1, loc))
                else:
                    stack.append((value_node, depth + 1, loc))
                    stack.append((key_node, depth + 1, loc))
            keys.extend((loc, k, node) for k, _ in pairs if isinstance(k, yaml.ScalarNode))
        elif isinstance(node, sequence):
            items = node.value
            stack.extend((items[i], depth + 1, (*loc, i)) for i in range(len(items) - 1, -1, -1))
    if isinstance(root, mapping):  # only a mapping is a manifest, whose keys are then walked
        _KEYS_SEEN[root] = keys


def _check_expansion(root: yaml.Node, written: int) -> None:
    """The careful walk for documents with aliases: cycles, depth on every path, expansion.

    Aliased nodes are shared objects in PyYAML's graph: sizes are memoised per node and count
    every expansion. Aliases may add as many nodes as the document has, or
    :data:`_MAX_ALIAS_NODES`, whichever is more.
    """
    limit = written + max(written, _MAX_ALIAS_NODES)
    sizes: dict[int, int] = {}
    path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[id(node)] > limit:
                raise _GraphProblem(
                    node, f"document expands to more than {limit} nodes through aliases"
                )
            continue
        if id(node) in sizes:
            continue
        if id(node) in path:
            raise _GraphProblem(node, "an alias refers to a node that contains it")
        if len(path) >= _MAX_DEPTH:
            raise _GraphProblem(node, f"nested deeper than {_MAX_DEPTH} levels")
        path.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _yaml_problem(file: str, text: str, exc: yaml.YAMLError) -> ManifestProblem:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML forbids; no mark, a position
        before = text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        reason = (
            f"unacceptable character #x{exc.character:04x}"
            if isinstance(exc.character, int)
            else "unacceptable character"
        )
    else:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        # Never str(exc): it quotes a snippet of the file, which may not be a manifest at all.
        reason = getattr(exc, "problem", None) or "the document cannot be read as YAML"
    return ManifestProblem(file, line, column, "", f"YAML syntax error: {' '.join(reason.split())}")


def _load_document(
    file: str, node: yaml.Node, data: Any, problems: list[ManifestProblem], policy: TrustPolicy
) -> LoadedAccount | None:
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        line, column = _position(node)
        problems.append(
            ManifestProblem(
                file,
                line,
                column,
                "",
                "a manifest document must be a mapping with version, account, api, key_env, models",
            )
        )
        return None
    local = list(_structure_problems(file, node))
    local.extend(_policy_problems(file, node, data, policy))
    local.extend(_duplicate_model_ids(file, node, data.get("models")))
    for loc, message in [*models.missing_required(data), *models.placeholder_problems(data)]:
        line, column = _position(_node_at(node, loc))
        local.append(ManifestProblem(file, line, column, _dotted(loc), message))
    secret_paths = {p.path for p in local}
    try:
        account = models.ACCOUNT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problem = _pydantic_problem(file, node, error)
            if problem.path not in secret_paths:
                local.append(problem)
        problems.extend(local)
        return None
    problems.extend(local)
    if local:
        return None
    model_lines = {
        entry.model_id: _position(_node_at(node, ("models", index)))[0]
        for index, entry in enumerate(account.models)
    }
    return LoadedAccount(account, file, _position(node)[0], model_lines)


def _policy_allows(data: dict[Any, Any], policy: TrustPolicy) -> bool:
    """Whether :func:`_policy_problems` would find nothing (no positions needed)."""
    checks = (("api_base", policy.api_base_problem), ("key_env", policy.key_env_problem))
    return not any(
        isinstance(value := data.get(field_name), str) and check(value) is not None
        for field_name, check in checks
    )


def _policy_problems(
    file: str, node: yaml.Node, data: dict[Any, Any], policy: TrustPolicy
) -> Iterator[ManifestProblem]:
    """``api_base`` and ``key_env`` checked against the operator's policy (design.md §7)."""
    checks = (("api_base", policy.api_base_problem), ("key_env", policy.key_env_problem))
    for field_name, check in checks:
        value = data.get(field_name)
        why = check(value) if isinstance(value, str) else None
        if why is not None:
            line, column = _position(_node_at(node, (field_name,)))
            yield ManifestProblem(file, line, column, field_name, why)


def _structure_problems(file: str, node: yaml.MappingNode) -> Iterator[ManifestProblem]:
    """Duplicate keys (PyYAML silently keeps the last) and keys that look like secrets."""
    for loc, key_node, mapping in _walk_keys(node, ()):
        key = key_node.value
        line, column = _position(key_node)
        path = _dotted((*loc, key))
        if _SECRET_KEY.fullmatch(str(key)):
            yield ManifestProblem(
                file,
                line,
                column,
                path,
                "a manifest never holds an API key: put the key in an environment variable "
                "and name that variable in key_env",
            )
        same = [k for k, _ in mapping.value if k.value == key]
        if len(same) > 1 and same[-1] is key_node:
            first = _position(same[0])[0]
            yield ManifestProblem(
                file, line, column, path, f"duplicate key (first at line {first})"
            )


def _walk_keys(
    node: yaml.Node, loc: Location
) -> Iterator[tuple[Location, yaml.ScalarNode, yaml.MappingNode]]:
    """Every mapping key under ``node``: what :func:`_check_graph` noted, else a walk."""
    noted = _KEYS_SEEN.pop(node, None) if not loc else None
    if noted is not None:
        yield from noted
        return
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                yield loc, key_node, node
                yield from _walk_keys(value_node, (*loc, key_node.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk_keys(item, (*loc, index))


def _has_duplicate_model_ids(entries: Any) -> bool:
    """Whether :func:`_duplicate_model_ids` would find any (no positions needed)."""
    if not isinstance(entries, list):
        return False
    ids = [e.get("model_id") for e in entries if isinstance(e, dict)]
    named = [model_id for model_id in ids if isinstance(model_id, str)]
    return len(set(named)) != len(named)


def _duplicate_model_ids(file: str, node: yaml.Node, entries: Any) -> Iterator[ManifestProblem]:
    """Entries that repeat a ``model_id``; read from the raw data so that they are reported
    together with the schema's problems, not only once those are fixed."""
    if not isinstance(entries, list):
        return
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        model_id = entry.get("model_id") if isinstance(entry, dict) else None
        if not isinstance(model_id, str):
            continue
        if model_id in first_index:
            first = _position(_node_at(node, ("models", first_index[model_id])))[0]
            loc: Location = ("models", index, "model_id")
            line, column = _position(_node_at(node, loc))
            yield ManifestProblem(
                file,
                line,
                column,
                _dotted(loc),
                f"duplicate model_id {model_id!r} (first declared at line {first})",
            )
        else:
            first_index[model_id] = index


def _duplicate_accounts(accounts: Iterable[LoadedAccount]) -> Iterator[ManifestProblem]:
    first: dict[str, LoadedAccount] = {}
    for account in accounts:
        if account.name in first:
            earlier = first[account.name]
            yield ManifestProblem(
                account.file,
                account.line,
                1,
                "account",
                f"duplicate account {account.name!r} (first declared at "
                f"{earlier.file}:{earlier.line})",
            )
        else:
            first[account.name] = account


# ---------------------------------------------------------------------------------------------
# pydantic errors → problems
# ---------------------------------------------------------------------------------------------


def _field_location(loc: tuple[str | int, ...]) -> Location:
    """Drop the union tags pydantic adds (``community``, ``present``…) from a location."""
    kept: list[str | int] = []
    for index, part in enumerate(loc):
        after_union = index == 0 or isinstance(loc[index - 1], int)
        if isinstance(part, str) and part in models.UNION_TAGS and after_union:
            continue
        kept.append(part)
    return tuple(kept)


def _pydantic_problem(file: str, root: yaml.Node, error: ErrorDetails) -> ManifestProblem:
    loc = _field_location(tuple(error["loc"]))
    if error["type"] == "invalid_key":
        return _invalid_key_problem(file, root, loc[:-1], error.get("input"))
    if error["type"].startswith("union_tag_") and not loc:
        loc = ("api",)  # the account's discriminator names no field of its own
    target = _node_at(root, loc, key_node=error["type"] == "extra_forbidden")
    if error["type"] in ("missing", "union_tag_not_found") and loc:
        target = _node_at(root, loc[:-1])
    line, column = _position(target)
    if error["type"] == "extra_forbidden":
        message = _unknown_key_message(root, loc, str(loc[-1]) if loc else "")
    else:
        message = _message(loc, error)
    return ManifestProblem(file, line, column, _dotted(loc), message)


def _invalid_key_problem(file: str, root: yaml.Node, parent: Location, key: Any) -> ManifestProblem:
    """A mapping key that YAML read as a number, boolean or null; point at the key itself."""
    container = _node_at(root, parent)
    candidates = [
        k
        for k, _ in (container.value if isinstance(container, yaml.MappingNode) else [])
        if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:str"
    ]
    exact = [k for k in candidates if _same_key(k, key)]
    target: yaml.Node = (exact or candidates)[0] if candidates else container
    written = target.value if isinstance(target, yaml.ScalarNode) else str(key)
    line, column = _position(target)
    return ManifestProblem(
        file,
        line,
        column,
        _dotted((*parent, written)),
        f"key {written!r} must be a string: quote it or fix the name",
    )


def _same_key(node: yaml.ScalarNode, key: Any) -> bool:
    try:
        value = yaml.safe_load(node.value)
    except yaml.YAMLError:
        return False
    return type(value) is type(key) and bool(value == key)


def _message(loc: Location, error: ErrorDetails) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    name = loc[-1] if loc else ""
    # key_env may hold a key pasted by mistake: never echo its value.
    shown = "the value" if name == "key_env" else _shown(value)
    if kind == "missing":
        return f"'{name}' is required"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        if name == "ensure":  # entries are routed by ensure, so pydantic names one value only
            allowed = ["present", "absent"]
        if not allowed:
            return f"{shown} is not supported; expected {ctx.get('expected')}"
        return f"{shown} is not one of {', '.join(allowed)}"
    if kind == "union_tag_not_found":
        return f"'api' is required: {' or '.join(API_KINDS)}"
    if kind == "union_tag_invalid":
        return f"{_shown(ctx.get('tag'))} is not one of {', '.join(API_KINDS)}"
    if kind in ("string_pattern_mismatch", "string_too_long") and name == "key_env":
        return "key_env is not a valid variable name (value hidden)"
    if kind == "string_pattern_mismatch":
        return f"{shown} does not match the pattern {ctx.get('pattern')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping (got {_type_name(value)})"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list (got {_type_name(value)})"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{shown} is out of range: {error['msg'].lower()}"
    return f"{error['msg']} (got {_type_name(value)})"


def _shown(value: Any) -> str:
    """A value for a message, cut short: a manifest may hold anything, even a whole file."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    """The YAML word for a value's type, as manifest authors know them."""
    names = {
        dict: "mapping",
        list: "list",
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


_ALL_FIELDS = sorted(
    {
        *models.CommunityAccount.model_fields,
        *models.EnterpriseAccount.model_fields,
        *models.CommunityModel.model_fields,
        *models.EnterpriseModel.model_fields,
    }
)
_LOAD_FIELDS: dict[str, frozenset[str]] = {
    api: frozenset(fields) for api, fields in models.LOAD_FIELDS.items()
}
_ENTRY_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("defaults", ApiKind.COMMUNITY): tuple(models.CommunityDefaults.model_fields),
    ("defaults", ApiKind.ENTERPRISE): tuple(models.EnterpriseDefaults.model_fields),
    ("models", ApiKind.COMMUNITY): tuple(models.CommunityModel.model_fields),
    ("models", ApiKind.ENTERPRISE): tuple(models.EnterpriseModel.model_fields),
}


def _unknown_key_message(root: yaml.Node, loc: Location, name: str) -> str:
    """Say why a key is unknown where it stands, and suggest the closest key valid there."""
    api = _scalar_at(root, ("api",))
    in_entry = len(loc) == 3 and loc[0] == "models"
    absent = in_entry and _scalar_at(root, (*loc[:-1], "ensure")) == "absent"
    if absent and any(name in fields for fields in _LOAD_FIELDS.values()):
        return f"unknown key '{name}': an entry with ensure: absent takes only model_id, protect"
    if (in_entry or (len(loc) == 2 and loc[0] == "defaults")) and api in _LOAD_FIELDS:
        for other, fields in _LOAD_FIELDS.items():
            if other != api and name in fields - _LOAD_FIELDS[api]:
                return f"unknown key '{name}': a load field of {other} accounts, not of {api} ones"
        valid: Sequence[str] = _ENTRY_KEYS[(str(loc[0]), api)]
    elif len(loc) == 1:
        valid = tuple(models.CommunityAccount.model_fields)
    else:
        valid = _ALL_FIELDS
    close = difflib.get_close_matches(name, valid, n=1)
    return f"unknown key {_shown(name)}" + (f" (did you mean '{close[0]}'?)" if close else "")


def _scalar_at(root: yaml.Node, loc: Location) -> str | None:
    """The text of the scalar at ``loc``, if there is one exactly there."""
    node = _node_at(root, loc)
    parent = _node_at(root, loc[:-1])
    if isinstance(node, yaml.ScalarNode) and node is not parent:
        return str(node.value)
    return None


# ---------------------------------------------------------------------------------------------
# Node positions
# ---------------------------------------------------------------------------------------------


def _node_at(root: yaml.Node, loc: Location, *, key_node: bool = False) -> yaml.Node:
    """The deepest node along ``loc``; with ``key_node``, the key of the last mapping entry."""
    node = root
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                return node
            node = match[0] if (last and key_node) else match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _dotted(loc: Location) -> str:
    """``('models', 2, 'url')`` → ``models[2].url``; odd keys quoted: ``defaults["a b"]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]+")


def _one_line(problem: ManifestProblem) -> ManifestProblem:
    """Escape what would break "one problem a line": a manifest may put newlines anywhere."""
    path, message = _printable(problem.path), _printable(problem.message)
    if (path, message) == (problem.path, problem.message):
        return problem
    return ManifestProblem(problem.file, problem.line, problem.column, path, message)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
