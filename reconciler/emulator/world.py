"""The records the emulated world is made of: accounts, the models they own, owed webhooks.

Plain data with a few read-only views (is it loaded, how many loads are in flight); the rules
that change them over time live in :mod:`.state`. Times are emulated epoch seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from reconciler.api.wire import LoadWebhook
from reconciler.emulator import assumptions as assumed
from reconciler.emulator.clock import iso
from reconciler.emulator.config import AccountConfig


@dataclass
class ModelRecord:
    """One model an account owns; times are emulated epoch seconds."""

    model_id: str
    spec: dict[str, Any]
    status: str
    created_at: float
    started_at: float | None = None
    due_at: float | None = None
    ready_at: float | None = None
    last_used_at: float | None = None
    evicted_at: float | None = None
    will_fail: bool = False
    reloading: bool = False
    webhook: str | None = None
    loads: int = 0

    @property
    def loaded(self) -> bool:
        """Whether the model is on the inference server (in any status but evicted)."""
        return self.status != assumed.EVICTED

    def as_state(self) -> dict[str, Any]:
        """The record as ``/_emulator/state`` shows it: ISO times, owned and loaded flags."""
        times = ("created_at", "started_at", "due_at", "ready_at", "last_used_at", "evicted_at")
        shown = dataclasses.asdict(self) | {name: iso(getattr(self, name)) for name in times}
        return shown | {"owned": True, "loaded": self.loaded}


@dataclass
class Account:
    """An account: its configuration and the models it owns, by id, in load order."""

    config: AccountConfig
    models: dict[str, ModelRecord] = field(default_factory=dict)
    #: Ids of the models whose status is ``model_loading``, kept by the state as loads start
    #: and end, so that the queue limit costs O(1) per request rather than a scan.
    loading: set[str] = field(default_factory=set, repr=False, compare=False)
    #: ``model_list`` entries as JSON text, by id: ``(record, status, text)``. An entry holds
    #: while the id still names that record in that status (a record's other listed fields
    #: never change), so a listing of 10k models serialises only the ones that changed.
    listed: dict[str, tuple[ModelRecord, str, str]] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: ``get_all_models`` entries, by id: ``(record, ready_at, list name, text)``, kept the same
    #: way (a reload changes ``ready_at``, which the entry shows).
    served: dict[str, tuple[ModelRecord, float | None, str, str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def name(self) -> str:
        """The account's name."""
        return self.config.name

    @property
    def evicts(self) -> bool:
        """Whether the account's API evicts idle models (the community API does)."""
        return self.config.api.caps.evicts

    def in_flight(self, except_id: str = "") -> int:
        """Loads and reloads running now, not counting ``except_id``."""
        return len(self.loading) - (except_id in self.loading)


@dataclass(frozen=True)
class WebhookDelivery:
    """A webhook call that a finished enterprise load owes."""

    url: str
    payload: LoadWebhook
