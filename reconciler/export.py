"""``reconciler export``: a live account written as a manifest, and its adoption. No I/O.

A team whose models were loaded by hand brings them under manifests without retyping them.
The listings say which models an account holds, never their url or format (api-spec §2), so
a model's load fields come from the ledger's record of what this tool last applied (its
``spec``, written back without the documented defaults, so that it resolves to the same
``spec_hash`` and plans to no changes); a model the ledger does not know gets its required
fields as placeholders starting with :data:`~reconciler.manifest.models.PLACEHOLDER_MARKER`,
which ``validate`` rejects field by field until someone fills them in.

Which models are written:

- every model the account has on its inference server (ready, loading, failed), as an entry;
- models that are owned but evicted are listed in a comment, not as entries: declaring one
  makes ``apply`` reload it, and an export must plan to no changes;
- ids matched by the account's ``ignore`` are left out (never touched nor reported), and so
  are ids a manifest cannot declare (reported to the caller).

Values from the server reach the YAML only through :func:`yaml.safe_dump`; the one comment
that names models lists ids that match the manifest's id pattern only.

Adoption (:func:`adoptions`) is the second step: once the placeholders are filled in, the
declared models that are live and unknown to the ledger are recorded as managed with their
declared spec, as ``apply`` would have recorded them had it loaded them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import yaml
from pydantic import ValidationError

from reconciler.api import wire
from reconciler.api.kinds import ApiKind
from reconciler.core.ledger_entries import LedgerEntry
from reconciler.core.ledger_fold import LedgerEvent, next_entry
from reconciler.core.live import Condition, LiveState
from reconciler.errors import ConfigError
from reconciler.manifest.models import (
    ACCOUNT_ADAPTER,
    LOAD_FIELDS,
    PLACEHOLDER_MARKER,
    Api,
    LoadedAccount,
    Prune,
)
from reconciler.manifest.policy import TrustPolicy

#: Model ids a manifest accepts (``models.ModelId``); anything else is not written at all.
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _placeholder(why: str) -> str:
    """A plain YAML scalar (no ``: ``), so that it reads as written and is easy to replace."""
    return f"{PLACEHOLDER_MARKER} ({why})"


def _one_of(values: Sequence[str]) -> str:
    return "one of " + ", ".join(values)


#: The required fields per API, each with the placeholder that stands for it.
PLACEHOLDERS: Mapping[ApiKind, Mapping[str, str]] = {
    ApiKind.COMMUNITY: {
        "url": _placeholder("reconciler export cannot read the url from the API"),
        "model_format": _placeholder(_one_of(wire.MODEL_FORMATS)),
        "model_category": _placeholder(_one_of(wire.MODEL_CATEGORIES)),
    },
    ApiKind.ENTERPRISE: {
        "url": _placeholder("reconciler export cannot read the url from the API"),
        "model_type": _placeholder(_one_of(wire.ENTERPRISE_MODEL_TYPES)),
    },
}

#: Conditions whose models are written as entries; evicted ones go to a comment.
_ENTRY_CONDITIONS = frozenset(
    {Condition.READY, Condition.LOADING, Condition.FAILED, Condition.UNKNOWN}
)


@dataclass(frozen=True)
class ExportAccount:
    """The account part of the exported manifest: a declared account's, or the command's."""

    name: str
    api: Api
    key_env: str
    api_base: str | None = None
    queue_limit: int = 5
    prune: Prune = "none"
    ignore: tuple[str, ...] = ()

    @classmethod
    def of(cls, account: LoadedAccount) -> ExportAccount:
        """The settings of an account the manifests declare (its models are not kept)."""
        spec = account.spec
        return cls(
            spec.account,
            spec.api,
            spec.key_env,
            spec.api_base,
            spec.queue_limit,
            spec.prune,
            tuple(spec.ignore),
        )

    def ignores(self, model_id: str) -> bool:
        """Whether ``model_id`` matches one of the ``ignore`` globs."""
        return any(fnmatch.fnmatchcase(model_id, glob) for glob in self.ignore)


@dataclass(frozen=True)
class Export:
    """The manifest text and what went into it, for the command's summary."""

    text: str
    known: tuple[str, ...] = ()  # entries whose fields all came from the ledger
    placeholders: tuple[str, ...] = ()  # entries with fields to fill in
    evicted: tuple[str, ...] = ()  # owned, not loaded: in a comment only
    skipped: tuple[str, ...] = ()  # ids a manifest cannot declare


def exported_fields(api: str, model_id: str, spec: Mapping[str, str]) -> dict[str, str]:
    """A resolved spec as an entry's fields: documented defaults (and, on community, a
    ``model_name`` equal to the id) left out, the load fields in the schema's order.

    :func:`reconciler.manifest.models.resolve_models` puts back exactly what is left out, so
    the entry resolves to ``spec`` again and to the same ``spec_hash``.
    """
    kind = ApiKind(api)
    defaults = dict(kind.caps.load_defaults)
    if kind.caps.named_after_id is not None:
        defaults[kind.caps.named_after_id] = model_id
    order = {name: index for index, name in enumerate(LOAD_FIELDS[kind])}
    kept = {k: v for k, v in spec.items() if defaults.get(k) != v}
    return dict(sorted(kept.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def export_manifest(
    account: ExportAccount,
    live: LiveState,
    entries: Mapping[str, LedgerEntry],
    schema_ref: str,
) -> Export:
    """The manifest of ``account`` as ``live`` shows it, fields from the ledger's ``entries``.

    ``schema_ref`` is the path of the JSON Schema relative to where the manifest will be.
    """
    models: list[dict[str, str]] = []
    known: list[str] = []
    placeholders: list[str] = []
    evicted: list[str] = []
    skipped: list[str] = []
    for model_id, model in sorted(live.models.items()):
        if not _MODEL_ID.fullmatch(model_id):
            skipped.append(model_id)
            continue
        if account.ignores(model_id):
            continue
        if model.condition is Condition.EVICTED:
            evicted.append(model_id)
            continue
        if model.condition not in _ENTRY_CONDITIONS:
            continue
        entry = entries.get(model_id)
        if entry is not None and entry.confirmed and entry.spec:
            fields = exported_fields(account.api, model_id, entry.spec)
            models.append({"model_id": model_id, **fields})
            known.append(model_id)
        else:
            models.append({"model_id": model_id, **PLACEHOLDERS[account.api]})
            placeholders.append(model_id)
    text = "\n".join(
        [
            *_header(account, schema_ref, len(placeholders)),
            _document(account, models).rstrip("\n"),
            *_evicted_comment(evicted),
        ]
    )
    return Export(text + "\n", tuple(known), tuple(placeholders), tuple(evicted), tuple(skipped))


def _header(account: ExportAccount, schema_ref: str, to_fill: int) -> list[str]:
    lines = [
        f"# yaml-language-server: $schema={schema_ref}",
        "# Written by `reconciler export` from the live account; the listings give no url or",
        "# format, so those come from the ledger (what this tool last applied).",
    ]
    if to_fill:
        noun = "model needs its" if to_fill == 1 else "models need their"
        lines += [
            f"# {to_fill} {noun} fields filled in: replace every {PLACEHOLDER_MARKER} value",
            "# (`reconciler validate` lists them), then `reconciler export --adopt` records",
            "# the models as managed with what you declared.",
        ]
    return lines


def _document(account: ExportAccount, models: Sequence[Mapping[str, str]]) -> str:
    document: dict[str, object] = {
        "version": 1,
        "account": account.name,
        "api": str(account.api),  # the plain string: YAML cannot represent the enum
        "key_env": account.key_env,
    }
    if account.api_base is not None:
        document["api_base"] = account.api_base
    if account.queue_limit != 5:
        document["queue_limit"] = account.queue_limit
    if account.prune != "none":
        document["prune"] = account.prune
    if account.ignore:
        document["ignore"] = list(account.ignore)
    document["models"] = [dict(m) for m in models]
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=4096)


def _evicted_comment(evicted: Sequence[str]) -> list[str]:
    if not evicted:
        return []
    return [
        "# Owned but evicted from the inference server (idle), so left out: declaring one",
        "# makes `apply` reload it. Add an entry with its fields to keep it loaded:",
        *(f"#   - model_id: {model_id}" for model_id in evicted),
    ]


# ---------------------------------------------------------------------------------------------
# Adoption: the declared models recorded as managed
# ---------------------------------------------------------------------------------------------

AdoptionOutcome = Literal["adopted", "managed", "not-adopted"]

#: Live conditions a declared model may be adopted in: the model is there, whatever it does.
_ADOPTABLE = frozenset({Condition.READY, Condition.EVICTED, Condition.LOADING})


@dataclass(frozen=True)
class Adoption:
    """What ``export --adopt`` does about one declared model, and the entry to record."""

    model_id: str
    outcome: AdoptionOutcome
    reason: str
    entry: LedgerEntry | None = None


def adoptions(
    account: LoadedAccount, live: LiveState, entries: Mapping[str, LedgerEntry], at: str
) -> tuple[Adoption, ...]:
    """One :class:`Adoption` per model the account declares present (``ignore`` left out).

    A model the ledger already knows keeps its entry: adopting must never hide a spec change
    (``plan`` shows a replace when the declaration differs from what was applied).
    """
    result: list[Adoption] = []
    for model in account.desired():
        if model.ensure != "present" or account.ignores(model.model_id):
            continue
        condition = live.condition(model.model_id)
        if model.model_id in entries:
            result.append(Adoption(model.model_id, "managed", "already in the ledger; kept"))
        elif condition not in _ADOPTABLE:
            why = (
                "not on the account: apply loads it"
                if condition is Condition.MISSING
                else f"{condition.value}: apply decides; not adopted"
            )
            result.append(Adoption(model.model_id, "not-adopted", why))
        else:
            entry = next_entry(
                None,
                LedgerEvent.ADOPTED,
                action="noop",
                spec=model.spec,
                spec_hash=model.spec_hash,
                at=at,
            )
            result.append(Adoption(model.model_id, "adopted", "managed from now on", entry))
    return tuple(result)


# ---------------------------------------------------------------------------------------------
# An account the manifests do not declare
# ---------------------------------------------------------------------------------------------

#: Where an account given on the command line is "declared", for messages.
COMMAND_LINE = "<command line>"


def command_line_account(name: str, api: Api, key_env: str, policy: TrustPolicy) -> LoadedAccount:
    """An account given by ``--account``/``--api``/``--key-env``, checked as a manifest's
    would be (its name's pattern, the operator's key variable pattern).

    Raises:
        ConfigError: the name or the variable is not acceptable.
    """
    problem = policy.key_env_problem(key_env)
    if problem is not None:
        raise ConfigError(f"--key-env: {problem}")
    document = {"version": 1, "account": name, "api": api, "key_env": key_env}
    try:
        spec = ACCOUNT_ADAPTER.validate_python(document)
    except ValidationError as exc:
        raise ConfigError(
            f"--account {name!r} is not a valid account name: use letters, digits, '.', '_' "
            "and '-' (at most 64), starting with a letter or a digit"
        ) from exc
    return LoadedAccount(spec, COMMAND_LINE, 0)
