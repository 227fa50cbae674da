"""Desired-state models of manifest format version 1 (design.md §2).

A manifest document declares one account. Model entries carry the load endpoint's own field
names for the account's API (community: ``v3/load_model``; enterprise:
``v1/enterprise/load_model``), so the API docs read straight into manifests, plus the
reconciler's own ``ensure`` and ``protect``. Models are frozen and reject unknown keys; enum
values come from :mod:`reconciler.api.wire`, the union of what the docs ever listed.

Entries may leave load fields to ``defaults``, so "required" is checked on the *resolved* model
(defaults merged under the entry) by :func:`missing_required`, not by the entry's schema.

This module does no I/O: reading files and locating errors is :mod:`reconciler.manifest.loader`'s.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, TypeAdapter
from pydantic_core import PydanticCustomError

from reconciler.api import wire
from reconciler.api.kinds import API_KINDS, ApiKind
from reconciler.canonical import canonical_json

FORMAT_VERSION = 1

ModelId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The id the model is saved under and later used in generation calls.",
    ),
]
Ensure = Literal["present", "absent"]
Prune = Literal["none", "managed", "all"]
#: Which API an account uses (the manifest spells its values ``community``/``enterprise``).
Api = ApiKind

_PROTECT = Field(
    default=False,
    description="Never delete or replace this model, whatever else says so.",
)


#: Bounds on text fields: generous for real values, short enough that a file pasted into a
#: field is an error rather than a megabyte-long line in every output.
MAX_URL_LENGTH = 2048
MAX_NAME_LENGTH = 256
MAX_KEY_ENV_LENGTH = 128
MAX_IGNORE_PATTERNS = 1000


class _Strict(BaseModel):
    """Unknown keys are errors; scalars are strict (no ``"5"`` for 5, no ``true`` for 1, no
    ``!!binary`` bytes for a string): a manifest says exactly what it means."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _not_a_boolean(value: Any) -> Any:
    """YAML's ``true`` equals 1 in Python; a format version must be written as a number."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be the integer 1, not a boolean")
    return value


# ---------------------------------------------------------------------------------------------
# Load fields, one set per API. Every field is optional here: defaults may supply it.
# ---------------------------------------------------------------------------------------------


class CommunityLoadFields(_Strict):
    """The fields of ``v3/load_model`` (api-spec §2.3), all strings as the API takes them."""

    url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Hugging Face repo id, a ckpt download link, or a safetensors link.",
    )
    model_format: wire.ModelFormat | None = Field(
        default=None, description="How the weights are packaged."
    )
    model_category: wire.ModelCategory | None = Field(
        default=None, description="The kind of model (union of the three doc generations)."
    )
    model_subcategory: wire.ModelSubcategory | None = Field(
        default=None, description="`lora` for lora models (current docs only)."
    )
    model_visibility: wire.Visibility | None = Field(
        default=None, description="`private` or `public` (API default `public`)."
    )
    model_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Display name; the model_id when left out.",
    )
    force_load: wire.YesNo | None = Field(
        default=None, description="`yes` reloads automatically if the upload fails (default)."
    )
    revision: wire.Revision | None = Field(
        default=None, description="Weights precision, `fp16` (default) or `fp32`."
    )
    model_image: str | None = Field(
        default=None, max_length=MAX_URL_LENGTH, description="Image URL shown for the model."
    )
    hf_upload: wire.YesNo | None = Field(
        default=None, description="Undocumented by the API; default `no`."
    )


class EnterpriseLoadFields(_Strict):
    """The fields of ``v1/enterprise/load_model`` (api-spec §2.5)."""

    url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Hugging Face repo id, a .ckpt link, or a model trained by the Dreambooth API.",
    )
    model_type: wire.EnterpriseModelType | None = Field(
        default=None, description="How the server should treat the url."
    )
    from_safetensors: wire.YesNo | None = Field(
        default=None, description="`yes` when the url is a safetensors file (default `no`)."
    )
    revision: wire.Revision | None = Field(
        default=None, description="Weights precision, `fp16` or `fp32` (default)."
    )
    webhook: str | None = Field(
        default=None,
        max_length=MAX_URL_LENGTH,
        description="URL the server POSTs to when the load ends.",
    )
    upcast_attention: wire.YesNo | None = Field(
        default=None, description="`yes` only for SD 2.1 (default `no`)."
    )


class CommunityDefaults(CommunityLoadFields):
    """Load fields merged under every present model of a community account."""

    protect: bool | None = Field(default=None, description="Default of `protect` for models.")


class EnterpriseDefaults(EnterpriseLoadFields):
    """Load fields merged under every present model of an enterprise account."""

    protect: bool | None = Field(default=None, description="Default of `protect` for models.")


class CommunityModel(CommunityLoadFields):
    """A model that must be loaded on a community account."""

    model_id: ModelId
    ensure: Literal["present"] = Field(default="present", description="The model must exist.")
    protect: bool = _PROTECT


class EnterpriseModel(EnterpriseLoadFields):
    """A model that must be loaded on an enterprise server."""

    model_id: ModelId
    ensure: Literal["present"] = Field(default="present", description="The model must exist.")
    protect: bool = _PROTECT


class AbsentModel(_Strict):
    """A model that must not exist; it takes no load fields."""

    model_id: ModelId
    ensure: Literal["absent"] = Field(description="The model must be deleted.")
    protect: bool = _PROTECT


def _ensure_tag(value: Any) -> str:
    """Route an entry to its model by ``ensure``, so errors speak of the right fields."""
    ensure = value.get("ensure", "present") if isinstance(value, dict) else "present"
    return "absent" if ensure == "absent" else "present"


CommunityEntry = Annotated[
    Annotated[CommunityModel, Tag("present")] | Annotated[AbsentModel, Tag("absent")],
    Discriminator(_ensure_tag),
]
EnterpriseEntry = Annotated[
    Annotated[EnterpriseModel, Tag("present")] | Annotated[AbsentModel, Tag("absent")],
    Discriminator(_ensure_tag),
]

#: Union tags that pydantic puts in error locations; the loader drops them from field paths.
UNION_TAGS = frozenset({"present", "absent", *API_KINDS})


# ---------------------------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------------------------


class _AccountBase(_Strict):
    version: Annotated[Literal[1], BeforeValidator(_not_a_boolean)] = Field(
        description="Manifest format version; only 1 exists."
    )
    account: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Account name, unique across all manifests loaded together.",
    )
    key_env: str = Field(
        max_length=MAX_KEY_ENV_LENGTH,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable that holds this account's API key; "
        "it must match the operator's pattern (default: starts with MODELSLAB_).",
    )
    api_base: str | None = Field(
        default=None,
        max_length=MAX_URL_LENGTH,
        pattern=r"^https?://[^\s?#@]+$",
        description="API base URL ending in /api/ (else --api-base, RECONCILER_API_BASE, "
        "then https://modelslab.com/api/). Only the official bases, loopback and the bases "
        "the operator allows (--api-base, --allow-api-base) are accepted.",
    )
    queue_limit: int = Field(
        default=5, ge=1, le=100, description="Loads the API performs at once for this account."
    )
    prune: Prune = Field(
        default="none",
        description="Which undeclared models to delete: none, those this tool loaded "
        "(managed), or all.",
    )
    ignore: tuple[Annotated[str, Field(max_length=MAX_NAME_LENGTH)], ...] = Field(
        default=(),
        strict=False,
        max_length=MAX_IGNORE_PATTERNS,
        description="Glob patterns of model ids never touched nor reported.",
    )


class CommunityAccount(_AccountBase):
    """An account on the community API (``v3``/``v4`` endpoints)."""

    api: Literal[ApiKind.COMMUNITY] = Field(description="Which API the account uses.")
    defaults: CommunityDefaults = Field(
        default_factory=CommunityDefaults, description="Merged under every model entry."
    )
    models: tuple[CommunityEntry, ...] = Field(
        default=(), strict=False, description="Declared models."
    )


class EnterpriseAccount(_AccountBase):
    """An account on a dedicated enterprise server (``v1/enterprise`` endpoints)."""

    api: Literal[ApiKind.ENTERPRISE] = Field(description="Which API the account uses.")
    defaults: EnterpriseDefaults = Field(
        default_factory=EnterpriseDefaults, description="Merged under every model entry."
    )
    models: tuple[EnterpriseEntry, ...] = Field(
        default=(), strict=False, description="Declared models."
    )


Account = Annotated[CommunityAccount | EnterpriseAccount, Field(discriminator="api")]


#: Validates one YAML document (one account) and generates the manifest JSON Schema.
ACCOUNT_ADAPTER: TypeAdapter[CommunityAccount | EnterpriseAccount] = TypeAdapter(Account)


# ---------------------------------------------------------------------------------------------
# Resolved desired state: what the planner consumes
# ---------------------------------------------------------------------------------------------

#: The load fields a manifest entry may carry, by API, in the schema's order.
LOAD_FIELDS: Mapping[ApiKind, tuple[str, ...]] = {
    ApiKind.COMMUNITY: tuple(CommunityLoadFields.model_fields),
    ApiKind.ENTERPRISE: tuple(EnterpriseLoadFields.model_fields),
}
#: Load fields with no documented default, which the entry or ``defaults`` must give.
_REQUIRED: Mapping[ApiKind, tuple[str, ...]] = {
    ApiKind.COMMUNITY: ("url", "model_format", "model_category"),
    ApiKind.ENTERPRISE: ("url", "model_type"),
}


@dataclass(frozen=True, slots=True)
class DesiredModel:
    """A declared model with defaults merged in: the unit the planner compares.

    ``spec`` holds the load fields exactly as they will be sent, with the API's documented
    defaults filled in, so that writing a default explicitly or leaving it out is the same spec.
    Slotted, with ``spec_hash`` computed once at creation: the planner makes one per declared
    model (100k for a large account) and reads the hash of every present one.
    """

    model_id: str
    ensure: Ensure
    protect: bool
    spec: Mapping[str, str] = field(default_factory=dict)
    #: A stable hash of the spec: what the ledger records and compares.
    spec_hash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec_hash", spec_hash(self.spec))


def spec_hash(spec: Mapping[str, str]) -> str:
    """Hash a load spec canonically (sorted keys, compact JSON: :mod:`reconciler.canonical`)."""
    canonical = canonical_json(spec if isinstance(spec, dict) else dict(spec))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def missing_required(document: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Required load fields that neither a present entry nor the account's defaults supply.

    Works on the raw document, so that a missing field is reported in the same run as the
    schema's errors; entries of the wrong shape are left to those. Returns ``(location,
    message)`` pairs; the loader turns locations into file:line.
    """
    api, entries = document.get("api"), document.get("models")
    if not isinstance(api, str) or api not in _REQUIRED or not isinstance(entries, list):
        return []
    defaults = document.get("defaults")
    supplied = defaults if isinstance(defaults, Mapping) else {}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or entry.get("ensure") == "absent":
            continue
        for name in _REQUIRED[ApiKind(api)]:
            if entry.get(name) is None and supplied.get(name) is None:
                problems.append(
                    (("models", index), f"'{name}' is required (set it here or in defaults)")
                )
    return problems


#: What ``reconciler export`` writes where the API does not say a field's value: a value that
#: starts with it is never sent, it is an error that names the field to fill in.
PLACEHOLDER_MARKER = "FILL-IN"


def placeholder_problems(document: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Fields of the account's ``defaults`` and model entries still holding an export
    placeholder (a string starting with :data:`PLACEHOLDER_MARKER`).

    Checked on the raw document, before the schema: a placeholder in an enum field must say
    "fill this in", not "not one of …". Returns ``(location, message)`` pairs, as
    :func:`missing_required` does.
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    places: list[tuple[tuple[str | int, ...], Any]] = [(("defaults",), document.get("defaults"))]
    entries = document.get("models")
    if isinstance(entries, list):
        places.extend((("models", index), entry) for index, entry in enumerate(entries))
    for location, mapping in places:
        if not isinstance(mapping, Mapping):
            continue
        for name, value in mapping.items():
            if isinstance(value, str) and value.startswith(PLACEHOLDER_MARKER):
                problems.append(
                    (
                        (*location, name),
                        f"fill in '{name}': this is a placeholder written by `reconciler "
                        "export`, which cannot read it from the API",
                    )
                )
    return problems


def resolve_models(account: CommunityAccount | EnterpriseAccount) -> tuple[DesiredModel, ...]:
    """Every declared model of ``account`` with defaults and documented defaults merged in."""
    default_protect = bool(account.defaults.protect)
    # The account's documented and declared defaults, merged once; then each entry's own
    # non-null load fields over them (read as attributes: model_dump per entry cost more
    # than the rest of planning a model).
    caps = account.api.caps
    base = {
        **caps.load_defaults,
        **account.defaults.model_dump(exclude_none=True, exclude={"protect"}),
    }
    names = LOAD_FIELDS[account.api]
    named_after_id = caps.named_after_id
    resolved: list[DesiredModel] = []
    for entry in account.models:
        protect = entry.protect or default_protect
        if isinstance(entry, AbsentModel):
            resolved.append(DesiredModel(entry.model_id, "absent", protect))
            continue
        spec = base.copy()
        for name in names:
            value = getattr(entry, name)
            if value is not None:
                spec[name] = value
        if named_after_id is not None:
            spec.setdefault(named_after_id, entry.model_id)
        resolved.append(DesiredModel(entry.model_id, "present", protect, spec))
    return tuple(resolved)


@dataclass(frozen=True)
class LoadedAccount:
    """A validated account and where it was declared, as the loader hands it to the engine."""

    spec: CommunityAccount | EnterpriseAccount
    file: str
    line: int
    model_lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The account's name, unique across the manifests of a run."""
        return self.spec.account

    @property
    def api(self) -> Api:
        """Which API the account uses."""
        return self.spec.api

    def ignores(self, model_id: str) -> bool:
        """Whether ``model_id`` matches one of the account's ``ignore`` globs."""
        if not self.spec.ignore:  # asked once per model: most accounts ignore nothing
            return False
        return any(fnmatch.fnmatchcase(model_id, glob) for glob in self.spec.ignore)

    def desired(self) -> tuple[DesiredModel, ...]:
        """The declared models, resolved (see :func:`resolve_models`)."""
        return self._resolved

    @functools.cached_property
    def _resolved(self) -> tuple[DesiredModel, ...]:
        # Once per run: apply plans each account twice (before and after), and resolving
        # hashes every spec; the validated spec is frozen, so the result cannot go stale.
        return resolve_models(self.spec)

    def origin(self, model_id: str) -> str:
        """``file:line`` of a model's entry, or of the account when it has none."""
        return f"{self.file}:{self.model_lines.get(model_id, self.line)}"
