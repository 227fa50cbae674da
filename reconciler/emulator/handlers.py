"""What each emulated API endpoint does, once the request's key has been accepted.

One function per endpoint of api-spec §7.1, each taking the emulator's state, the account the
key belongs to and the JSON body, and returning a :class:`~replies.Reply`. Requests are
parsed with the shared wire models (:mod:`validation` words the errors the Laravel way) and
answers are built from them. :data:`ENDPOINTS` maps each path to its handler; which
API's keys may call it is the capability table's (:attr:`ApiCapabilities.endpoints`).

Key checks, the spam filter, faults and HTTP statuses happen before and after, in the app.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from reconciler.api import wire
from reconciler.api.wire import (
    CommunityLoadRequest,
    EnterpriseLoadRequest,
    FinetuneListResponse,
    GetAllModelsResponse,
    KeyRequest,
    LoadedModel,
    ModelIdRequest,
    PublicModel,
    StatusMessage,
    SystemDetails,
    body_of,
)
from reconciler.emulator import assumptions as assumed
from reconciler.emulator import replies
from reconciler.emulator.clock import to_datetime
from reconciler.emulator.replies import Reply
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.validation import parse
from reconciler.emulator.world import Account, ModelRecord

Handler = Callable[[EmulatorState, Account, dict[str, Any]], Reply]


def _success(message: str) -> Reply:
    return replies.ok(StatusMessage(status="success", message=message))


def _spec(request: KeyRequest) -> dict[str, Any]:
    """What a load asked for, minus the key: stored, and shown in ``/_emulator/state``."""
    return {name: value for name, value in body_of(request).items() if name != "key"}


# --- community (v3/v4/v6) -----------------------------------------------------------------


def finetune_list(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """Every id the account owns, loaded or not."""
    parse(KeyRequest, body, ())
    ids: list[str | wire.FinetuneEntry] = list(account.models)
    return replies.ok(
        FinetuneListResponse(status="success", messege=assumed.FINETUNE_LIST_MESSEGE, data=ids)
    )


def model_list(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """The public catalogue, then the account's models on the inference server: a bare array.

    Each entry's JSON text is kept (:attr:`Account.listed`) and reused while its record and
    status stay the same: building 10k wire models per listing cost ~80 ms of CPU, which a
    benchmark of the client would have measured instead of the client.
    """
    parse(KeyRequest, body, ())
    parts = [_catalogue_text(), *_listed_entries(account)]
    return replies.prerendered("[" + ",".join(part for part in parts if part) + "]")


def _listed_entries(account: Account) -> list[str]:
    """The account's ``model_list`` entries as JSON text, from :attr:`Account.listed`."""
    parts = []
    listed = account.listed
    for model_id, record in account.models.items():
        if record.status == assumed.EVICTED:
            continue
        cached = listed.get(model_id)
        if cached is None or cached[0] is not record or cached[1] != record.status:
            cached = listed[model_id] = (record, record.status, _entry_text(_public(record)))
        parts.append(cached[2])
    if len(listed) > 2 * len(account.models) + 64:  # forget deleted and replaced models
        account.listed = {k: v for k, v in listed.items() if account.models.get(k) is v[0]}
    return parts


@functools.cache
def _catalogue_text() -> str:
    return ",".join(_entry_text(PublicModel.model_validate(entry)) for entry in assumed.CATALOGUE)


def _entry_text(item: PublicModel | LoadedModel) -> str:
    return json.dumps(item.model_dump(mode="json"), separators=(",", ":"))


def _public(record: ModelRecord) -> PublicModel:
    return PublicModel(
        model_id=record.model_id,
        status=record.status,
        created_at=to_datetime(record.created_at).strftime(assumed.CREATED_AT_FORMAT),
        instance_prompt=None,
        model_name=str(record.spec.get("model_name", "")),
        description="",
        screenshots=str(record.spec.get("model_image", "")),
    )


def load_model(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """Start a community load (replacing any model with the id), unless the queue is full."""
    request = parse(CommunityLoadRequest, body, wire.COMMUNITY_REQUIRED)
    if account.in_flight(request.model_id) >= account.config.queue_limit:
        return replies.queue_limited(account.config.queue_limit, state.clock.time_scale)
    state.start_load(account, request.model_id, _spec(request))
    return _success(assumed.LOAD_STARTED)


def model_reload(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """Bring an owned, evicted (or failed) model back; ready ones are already loaded."""
    request = parse(ModelIdRequest, body, ("model_id",))
    record = account.models.get(request.model_id)
    if record is None:
        return replies.not_found(assumed.MODEL_ID_NOT_FOUND)
    starts = record.status in (assumed.EVICTED, assumed.FAILED)
    if starts and account.in_flight() >= account.config.queue_limit:
        return replies.queue_limited(account.config.queue_limit, state.clock.time_scale)
    return _success(state.start_reload(account, request.model_id))


# --- enterprise (v1/enterprise) -------------------------------------------------------------


def enterprise_load(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """Start an enterprise load; its ``webhook`` is called when the load ends."""
    request = parse(EnterpriseLoadRequest, body, wire.ENTERPRISE_REQUIRED)
    if account.in_flight(request.model_id) >= account.config.queue_limit:
        return replies.queue_limited(account.config.queue_limit, state.clock.time_scale)
    state.start_load(account, request.model_id, _spec(request), webhook=request.webhook)
    return _success(assumed.LOAD_STARTED)


def verify_model(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """Whether a model is loaded and servable on the enterprise server."""
    request = parse(ModelIdRequest, body, ("model_id",))
    record = account.models.get(request.model_id)
    if record is None or record.status != assumed.READY:
        return replies.not_found(assumed.NOT_ON_SERVER)
    return _success(assumed.MODEL_EXISTS)


def get_all_models(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """The loaded models, with their ``load_data``; lora and embeddings in their own lists.

    Each entry's JSON text is kept while its record and its ``ready_at`` stay the same, as for
    ``model_list``: 10k wire models per listing cost ~55 ms of CPU.
    """
    parse(KeyRequest, body, ())
    lists = _served_entries(account)
    empty = GetAllModelsResponse(status="success", models=[], lora_models=[], embeddings_models=[])
    shape = json.dumps(empty.model_dump(mode="json", exclude_none=True), separators=(",", ":"))
    for name, texts in lists.items():
        shape = shape.replace(f'"{name}":[]', f'"{name}":[' + ",".join(texts) + "]", 1)
    return replies.prerendered(shape)


def _served_entries(account: Account) -> dict[str, list[str]]:
    """The account's ``get_all_models`` entries as JSON text, by list, from
    :attr:`Account.served`."""
    lists: dict[str, list[str]] = {"models": [], "lora_models": [], "embeddings_models": []}
    ready = [m for m in account.models.values() if m.status == assumed.READY]
    served = account.served
    for record in sorted(ready, key=lambda m: m.ready_at or 0.0):
        cached = served.get(record.model_id)
        if cached is None or cached[0] is not record or cached[1] != record.ready_at:
            side, text = _loaded_entry(record)
            cached = served[record.model_id] = (record, record.ready_at, side, text)
        lists[cached[2]].append(cached[3])
    if len(served) > 2 * len(account.models) + 64:  # forget deleted and replaced models
        account.served = {k: v for k, v in served.items() if account.models.get(k) is v[0]}
    return lists


def prerender(account: Account) -> None:
    """Render the account's listing entries ahead of its first listing (at start).

    Else the first listing of each seeded account renders all of its models: over 100
    accounts of 100 models, the first listing pass cost ~0.2 s of CPU more than the next
    ones, which a benchmark of the client measured as the client's.
    """
    if wire.MODEL_LIST in account.config.api.caps.endpoints:
        _listed_entries(account)
    if wire.ENTERPRISE_GET_ALL_MODELS in account.config.api.caps.endpoints:
        _served_entries(account)


def _loaded_entry(record: ModelRecord) -> tuple[str, str]:
    """Which list a ready enterprise model goes in, and its entry as JSON text."""
    side = assumed.ENTERPRISE_SIDE_LISTS.get(str(record.spec.get("model_type", "")), "models")
    loaded_at = to_datetime(record.ready_at or record.created_at)
    item = LoadedModel(
        model_id=record.model_id, load_data=loaded_at.strftime(assumed.LOAD_DATA_FORMAT)
    )
    return side, _entry_text(item)


def delete_model(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """Remove a model from the enterprise server, whatever its status."""
    request = parse(ModelIdRequest, body, ("model_id",))
    if not state.delete(account, request.model_id):
        return replies.not_found(assumed.NOT_ON_SERVER)
    return _success(assumed.MODEL_DELETED)


def clear_cache(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """Clears nothing the emulator models; answers the documented text."""
    parse(KeyRequest, body, ())
    return _success(assumed.CACHE_CLEARED)


def system_details(state: EmulatorState, account: Account, body: dict[str, Any]) -> Reply:
    """How many models are loaded; note ``"status": "ok"``."""
    parse(KeyRequest, body, ())
    count = sum(1 for m in account.models.values() if m.status == assumed.READY)
    reply = replies.ok(SystemDetails(status=assumed.SYSTEM_STATUS, model_count=count, queue_time=0))
    reply.body["queue_time"] = 0  # the documented integer, not the model's float
    return reply


ENDPOINTS: dict[str, Handler] = {
    wire.FINETUNE_LIST: finetune_list,
    wire.MODEL_LIST: model_list,
    wire.LOAD_MODEL: load_model,
    wire.MODEL_RELOAD: model_reload,
    wire.MODEL_RELOAD_V6: model_reload,
    wire.ENTERPRISE_LOAD_MODEL: enterprise_load,
    wire.ENTERPRISE_VERIFY_MODEL: verify_model,
    wire.ENTERPRISE_GET_ALL_MODELS: get_all_models,
    wire.ENTERPRISE_DELETE_MODEL: delete_model,
    wire.ENTERPRISE_CLEAR_CACHE: clear_cache,
    wire.ENTERPRISE_SYSTEM_DETAILS: system_details,
}
