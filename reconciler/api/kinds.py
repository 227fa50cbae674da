"""The two APIs an account may speak, and what each one can do (issue 13).

Behaviour that differs between the community API and an enterprise server is decided by asking
the kind's :class:`ApiCapabilities` (``kind.caps.lists_loading``, ``kind.caps.delete_endpoint``…),
never by comparing its name: the planner, apply, the client and the emulator then agree on one
table, and a quirk such as "an enterprise server does not list a model while it loads" is stated
once, here, instead of being worked around wherever it matters.

:class:`ApiKind` is a ``str`` enum, so it equals, prints and serialises (JSON, plan files, ledger
records) as the same ``community``/``enterprise`` strings manifests and outputs always used.

This module holds data only (it sits beside :mod:`reconciler.api.wire`, which the core, the
manifest and the emulator may all import): no HTTP, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from reconciler.api import wire


class ApiKind(StrEnum):
    """Which API an account uses; the value is what manifests and outputs spell."""

    COMMUNITY = "community"
    ENTERPRISE = "enterprise"

    @property
    def caps(self) -> ApiCapabilities:
        """What this API can do."""
        return CAPABILITIES[self]


@dataclass(frozen=True)
class ApiCapabilities:
    """What one kind of API offers, and the quirks the reconciler must allow for.

    Endpoints are the relative paths of :mod:`reconciler.api.wire`; ``None`` means the API has
    no such operation.
    """

    kind: ApiKind
    #: The endpoints one reading of the live state takes (all of them, in this order).
    list_endpoints: tuple[str, ...]
    #: The endpoint that starts a load, and the request model its body must fit.
    load_endpoint: str
    load_request: type[wire.KeyRequest]
    #: The endpoint that reloads an evicted model; ``None``: a reload is a load sent again.
    reload_endpoint: str | None
    #: The endpoint that deletes a model; ``None``: models cannot be deleted through the API.
    delete_endpoint: str | None
    #: The endpoint that says whether one model is loaded; ``None``: there is none.
    verify_endpoint: str | None
    #: Every endpoint this API serves, the ones above and those the reconciler never calls.
    endpoints: frozenset[str]
    #: Whether the listing shows a model while it loads. An enterprise server lists a model
    #: only once it is loaded (and never a failed load), so an accepted load stays unlisted
    #: for a while: the reconciler must count and wait for its own loads there.
    lists_loading: bool
    #: Whether the API evicts idle models (they stay owned and must be reloaded).
    evicts: bool
    #: Documented defaults of the optional load fields (api-spec §2.3 and §2.5).
    load_defaults: Mapping[str, str]
    #: A load field that defaults to the model's id when a manifest leaves it out.
    named_after_id: str | None

    @property
    def reload_is_load(self) -> bool:
        """Whether "reload" means sending the load again (there is no reload endpoint)."""
        return self.reload_endpoint is None

    @property
    def can_delete(self) -> bool:
        """Whether the API can delete a model."""
        return self.delete_endpoint is not None


COMMUNITY = ApiCapabilities(
    kind=ApiKind.COMMUNITY,
    list_endpoints=(wire.FINETUNE_LIST, wire.MODEL_LIST),
    load_endpoint=wire.LOAD_MODEL,
    load_request=wire.CommunityLoadRequest,
    reload_endpoint=wire.MODEL_RELOAD,
    delete_endpoint=None,
    verify_endpoint=None,
    endpoints=frozenset(
        {
            wire.FINETUNE_LIST,
            wire.MODEL_LIST,
            wire.LOAD_MODEL,
            wire.MODEL_RELOAD,
            wire.MODEL_RELOAD_V6,
        }
    ),
    lists_loading=True,
    evicts=True,
    load_defaults=MappingProxyType(wire.COMMUNITY_LOAD_DEFAULTS),
    named_after_id="model_name",
)

ENTERPRISE = ApiCapabilities(
    kind=ApiKind.ENTERPRISE,
    list_endpoints=(wire.ENTERPRISE_GET_ALL_MODELS,),
    load_endpoint=wire.ENTERPRISE_LOAD_MODEL,
    load_request=wire.EnterpriseLoadRequest,
    reload_endpoint=None,
    delete_endpoint=wire.ENTERPRISE_DELETE_MODEL,
    verify_endpoint=wire.ENTERPRISE_VERIFY_MODEL,
    endpoints=frozenset(
        {
            wire.ENTERPRISE_LOAD_MODEL,
            wire.ENTERPRISE_VERIFY_MODEL,
            wire.ENTERPRISE_GET_ALL_MODELS,
            wire.ENTERPRISE_DELETE_MODEL,
            wire.ENTERPRISE_CLEAR_CACHE,
            wire.ENTERPRISE_SYSTEM_DETAILS,
        }
    ),
    lists_loading=False,
    evicts=False,
    load_defaults=MappingProxyType(wire.ENTERPRISE_LOAD_DEFAULTS),
    named_after_id=None,
)

#: The capability table, one entry per kind.
CAPABILITIES: Mapping[ApiKind, ApiCapabilities] = MappingProxyType(
    {caps.kind: caps for caps in (COMMUNITY, ENTERPRISE)}
)

#: The kinds' values, in declaration order, for choices and messages.
API_KINDS: tuple[str, ...] = tuple(kind.value for kind in ApiKind)
