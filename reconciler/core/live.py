"""Live state of one account, built from one listing pass (design.md §3). Pure: no I/O.

Community accounts answer two listings: ``v3/finetune_list`` (ids the account owns) and
``v4/dreambooth/model_list`` (the public catalogue plus the account's models on the inference
server, each with a status). Enterprise servers answer one: ``get_all_models`` (loaded models;
a model still loading is not listed yet). From those, each model gets one condition.

The status-string → condition mapping is the single table :data:`STATUS_CONDITIONS`; a status
it does not know becomes :attr:`Condition.UNKNOWN`, which is reported, never a crash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.api import wire


class Condition(StrEnum):
    """What a model is on the account right now (design.md §3)."""

    MISSING = "missing"  # neither owned nor loaded
    LOADING = "loading"  # a load or reload is running
    READY = "ready"  # loaded and servable
    FAILED = "failed"  # the last load failed
    EVICTED = "evicted"  # owned, but not on the inference server (idle for 7 days)
    UNMANAGED = "unmanaged"  # live, but no manifest declares it
    UNKNOWN = "unknown"  # a status string this version does not know


#: The one table from the API's status strings to conditions. ``model_loading`` and
#: ``model_failed`` are the project's assumption (api-spec §7.3); training-pipeline states
#: (§2.1) and ``processing`` mean work in progress.
STATUS_CONDITIONS: Mapping[str, Condition] = {
    wire.STATUS_READY: Condition.READY,
    wire.STATUS_LOADING: Condition.LOADING,
    wire.STATUS_FAILED: Condition.FAILED,
    "processing": Condition.LOADING,
    "deploying_gpu": Condition.LOADING,
    "training_started": Condition.LOADING,
    "training_success": Condition.LOADING,
    "trained_model_compressing": Condition.LOADING,
    "trained_model_uploading": Condition.LOADING,
    "trained_model_uploaded": Condition.LOADING,
    "deploying_model": Condition.LOADING,
}


def condition_of_status(status: str) -> Condition:
    """Map an API status string to a condition; unknown strings give ``UNKNOWN``."""
    exact = STATUS_CONDITIONS.get(status)  # the usual spelling: no copies to make
    if exact is not None:
        return exact
    return STATUS_CONDITIONS.get(status.strip().lower(), Condition.UNKNOWN)


@dataclass(frozen=True, slots=True)
class LiveModel:
    """One model as the listings show it (slotted: one per live model, 100k on a large account)."""

    model_id: str
    condition: Condition
    status: str = ""  # the API's own status string, when it gave one
    loaded_at: str = ""  # enterprise ``load_data``, as the API wrote it


@dataclass(frozen=True)
class LiveState:
    """Every model an account holds, keyed by id, with a fingerprint of what was seen."""

    account: str
    models: Mapping[str, LiveModel] = field(default_factory=dict)
    #: When (on the run's clock) the request whose answer says which models are loaded was
    #: written, if the client knows: ``apply`` learns load times from it. Not compared.
    asked_at: float | None = field(default=None, compare=False)

    def condition(self, model_id: str, *, declared: bool = True) -> Condition:
        """The condition of ``model_id``: ``missing`` if not live, ``unmanaged`` if undeclared."""
        live = self.models.get(model_id)
        if live is None:
            return Condition.MISSING
        return live.condition if declared else Condition.UNMANAGED

    @property
    def fingerprint(self) -> str:
        """A stable hash of every (id, condition): equal states give equal fingerprints."""
        pairs = sorted((m.model_id, m.condition.value) for m in self.models.values())
        digest = hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode())
        return "sha256:" + digest.hexdigest()[:16]

    def unknown_statuses(self) -> list[LiveModel]:
        """Models whose status string this version does not understand (to report)."""
        return [m for m in self.models.values() if m.condition is Condition.UNKNOWN]


def community_live_state(
    account: str,
    owned_ids: Iterable[str],
    listed: Iterable[wire.PublicModel],
    asked_at: float | None = None,
) -> LiveState:
    """Live state of a community account from ``finetune_list`` and ``model_list``.

    Items of ``model_list`` the account does not own are the public catalogue and are left
    out; an owned id absent from ``model_list`` has been evicted from the inference server.
    """
    owned = set(owned_ids)
    on_server = {item.model_id: item for item in listed if item.model_id in owned}
    models: dict[str, LiveModel] = {}
    for model_id in sorted(owned):
        item = on_server.get(model_id)
        if item is None:
            models[model_id] = LiveModel(model_id, Condition.EVICTED)
        else:
            models[model_id] = LiveModel(model_id, condition_of_status(item.status), item.status)
    return LiveState(account, models, asked_at)


def enterprise_live_state(
    account: str, listing: wire.GetAllModelsResponse, asked_at: float | None = None
) -> LiveState:
    """Live state of an enterprise server from ``get_all_models``: every listed model is ready."""
    models = {
        item.model_id: LiveModel(item.model_id, Condition.READY, wire.STATUS_READY, item.load_data)
        for item in listing.all_models()
    }
    return LiveState(account, dict(sorted(models.items())), asked_at)
