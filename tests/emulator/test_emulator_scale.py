"""The emulator's cost per request follows the models that change, not every model it holds.

These pin the behaviour of the shortcuts (deadline heaps, O(1) queue counts, cached listing
entries, TCP_NODELAY): each must give exactly what the plain scan and the plain wire models
give. How fast they are is measured in ``benchmarks/``, never asserted here.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from reconciler.api.wire import GetAllModelsResponse, LoadedModel, PublicModel
from reconciler.emulator import EmulatorState, create_app, handlers, replies
from reconciler.emulator import assumptions as assumed
from reconciler.emulator.clock import to_datetime
from reconciler.emulator.server import _listen
from reconciler.emulator.traffic import SpamFilter, fingerprint

from .emulator_support import COMMUNITY_KEY, ENTERPRISE_KEY, make_config

WEEK = 7 * 24 * 3600.0
STATUSES = (assumed.READY, assumed.FAILED, assumed.EVICTED, assumed.LOADING)


def _state(**overrides: object) -> EmulatorState:
    return EmulatorState(make_config(**overrides))


def _listing(state: EmulatorState) -> str:
    return handlers.model_list(state, state.accounts["studio"], {"key": COMMUNITY_KEY}).text()


def _plain_listing(state: EmulatorState) -> str:
    """``model_list`` as built before the cache: every entry a fresh wire model."""
    items = [PublicModel.model_validate(entry) for entry in assumed.CATALOGUE]
    records = state.accounts["studio"].models.values()
    items += [handlers._public(record) for record in records if record.loaded]
    return replies.ok(items).text()


def test_cached_listing_is_the_wire_models_text_as_statuses_change() -> None:
    state = _state()
    for i in range(12):
        spec = {"model_name": f"M {i}", "model_image": "https://x/i.png"} if i % 2 else {}
        state.seed_model("studio", f"m{i}", spec, STATUSES[i % 4])
    assert _listing(state) == _plain_listing(state)
    state.clock.advance(61)  # the loading ones end
    assert _listing(state) == _plain_listing(state)
    state.start_load(state.accounts["studio"], "m1", {"model_name": "replaced"})
    state.delete(state.accounts["studio"], "m3")
    assert _listing(state) == _plain_listing(state)
    assert '"replaced"' in _listing(state)
    assert '"m3"' not in _listing(state)
    state.clock.advance(WEEK)  # everything idle is evicted
    assert _listing(state) == _plain_listing(state)


def test_due_loads_end_and_idle_models_are_evicted_once_each() -> None:
    state = _state(load_seconds=60.0)
    account = state.accounts["studio"]
    for i in range(5):
        state.start_load(account, f"m{i}", {})
    assert account.in_flight() == 5
    assert account.in_flight("m0") == 4
    state.clock.advance(60)
    state.advance()
    assert account.in_flight() == 0
    assert {m.status for m in account.models.values()} == {assumed.READY}
    state.clock.advance(WEEK / 2)
    state.use_model("studio", "m0")  # restarts m0's idle time: its old deadline is stale
    state.clock.advance(WEEK / 2)
    state.advance()
    statuses = {m.model_id: m.status for m in account.models.values()}
    assert statuses == {"m0": assumed.READY} | {f"m{i}": assumed.EVICTED for i in range(1, 5)}
    assert account.models["m1"].evicted_at == account.models["m1"].ready_at + WEEK  # type: ignore[operator]


def test_a_replaced_or_deleted_model_keeps_no_old_deadline() -> None:
    state = _state(load_seconds=60.0)
    account = state.accounts["studio"]
    state.start_load(account, "m", {"url": "a"})
    state.clock.advance(30)
    state.start_load(account, "m", {"url": "b"})  # the first load's end is stale
    state.clock.advance(31)
    state.advance()
    assert account.models["m"].status == assumed.LOADING
    assert account.in_flight() == 1
    state.delete(account, "m")
    assert account.in_flight() == 0
    state.clock.advance(60)
    state.advance()
    assert account.models == {}


def test_a_shorter_idle_setting_applies_to_models_already_idle() -> None:
    state = _state()
    state.seed_model("studio", "m")
    state.clock.advance(3600)
    state.settings.idle_evict_seconds = 1800
    state.advance()
    record = state.accounts["studio"].models["m"]
    assert record.status == assumed.EVICTED
    assert record.evicted_at == record.created_at + 1800


@pytest.mark.parametrize("status", STATUSES)
def test_restored_models_keep_their_deadlines(tmp_path: Path, status: str) -> None:
    path = tmp_path / "state.json"
    first = _state(state_file=path)
    first.seed_model("studio", "m", {}, status)
    second = _state(state_file=path)
    second.clock.advance(WEEK + 120)
    second.advance()
    assert second.accounts["studio"].models["m"].status == assumed.EVICTED
    assert second.accounts["studio"].in_flight() == 0


def test_the_listening_socket_hands_out_connections_without_nagle() -> None:
    listener = _listen("127.0.0.1", 0)
    try:
        with socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        listener.close()


def _plain_all_models(state: EmulatorState) -> str:
    """``get_all_models`` as built before the cache: every entry a fresh wire model."""
    lists: dict[str, list[LoadedModel]] = {"models": [], "lora_models": [], "embeddings_models": []}
    ready = [m for m in state.accounts["dedicated"].models.values() if m.status == assumed.READY]
    for record in sorted(ready, key=lambda m: m.ready_at or 0.0):
        side = assumed.ENTERPRISE_SIDE_LISTS.get(str(record.spec.get("model_type", "")), "models")
        when = to_datetime(record.ready_at or record.created_at).strftime(assumed.LOAD_DATA_FORMAT)
        lists[side].append(LoadedModel(model_id=record.model_id, load_data=when))
    body = GetAllModelsResponse(status="success", **lists)
    return replies.ok(body).text()


def _all_models(state: EmulatorState) -> str:
    account = state.accounts["dedicated"]
    return handlers.get_all_models(state, account, {"key": ENTERPRISE_KEY}).text()


def test_cached_enterprise_listing_is_the_wire_models_text() -> None:
    state = _state()
    assert _all_models(state) == _plain_all_models(state)
    kinds = ("huggingface", "lora", "embeddings", "controlnet")
    for i in range(8):
        state.seed_model("dedicated", f"e{i}", {"model_type": kinds[i % 4]}, STATUSES[i % 4])
        state.clock.advance(1)
    assert _all_models(state) == _plain_all_models(state)
    state.clock.advance(61)  # the loading ones end
    assert _all_models(state) == _plain_all_models(state)
    account = state.accounts["dedicated"]
    state.start_load(account, "e0", {"model_type": "lora"})  # reloaded: a new ready_at
    state.delete(account, "e4")
    state.clock.advance(61)
    assert _all_models(state) == _plain_all_models(state)
    assert '"e4"' not in _all_models(state)


def test_the_spam_filter_table_is_rebuilt_once_per_doubling_in_a_wave() -> None:
    """12,000 distinct requests in one window (1,000 accounts' waves): it was rebuilt on every
    request past 4,096, which made the emulator, not the client, what a benchmark measured."""
    spam = SpamFilter()
    rebuilds, table = 0, spam._accepted
    for n in range(12_000):
        identity = fingerprint("v3/load_model", {"key": "k", "model_id": f"m{n}"})
        assert spam.check(identity, now=1.0, window=30.0) == 0.0
        spam.accept(identity, now=1.0, window=30.0)
        if spam._accepted is not table:
            rebuilds, table = rebuilds + 1, spam._accepted
    assert rebuilds <= 2
    assert spam.check(fingerprint("v3/load_model", {"key": "k", "model_id": "m0"}), 2.0, 30.0)


@pytest.mark.anyio
async def test_seeded_listing_entries_are_rendered_when_the_server_starts() -> None:
    """Not by the first listing of each account: over 100 accounts of 100 models, the first
    listing pass cost ~0.2 s of the emulator's CPU more than the next ones, which a benchmark
    of the client measured as the client's. The entries are the ones a listing renders."""
    app = create_app(make_config())
    state: EmulatorState = app.state.emulator
    for i in range(5):
        state.seed_model("studio", f"m{i}", {"model_name": f"M {i}"})
        state.seed_model("dedicated", f"e{i}", {"model_type": "huggingface"})
    assert not state.accounts["studio"].listed and not state.accounts["dedicated"].served
    async with app.router.lifespan_context(app):
        assert sorted(state.accounts["studio"].listed) == [f"m{i}" for i in range(5)]
        assert sorted(state.accounts["dedicated"].served) == [f"e{i}" for i in range(5)]
        assert _listing(state) == _plain_listing(state)
