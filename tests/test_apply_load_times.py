"""apply learns load times that are never shorter than the server's (issue 11).

A stub account stands in for the API: a load starts when its request arrives and its answer
comes later (a slow answer, as under load); the listing shows it ready once its load time has
passed since it started. Whatever the timing of the polls, the learnt load time is an upper
bound of the real one, so the next wave's listing is never asked for before the loads can be
done (which would cost a listing that sees nothing new); and refused attempts before the
accepted one (a rate limit waited out by the client) do not make it longer.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import pytest

from reconciler import apply as apply_module
from reconciler.api.client import Accepted
from reconciler.api.kinds import ApiKind
from reconciler.apply import AccountApply, ApplyOptions, Awaited, LoadTimes, _Item
from reconciler.clock import FakeClock
from reconciler.core.events import NullProgress
from reconciler.core.ledger_fold import LedgerEvent
from reconciler.core.live import Condition, LiveModel, LiveState
from reconciler.core.plan import AccountPlan, Action, ModelChange
from reconciler.core.report import Outcome
from reconciler.errors import ServerError

LOAD_SECONDS = 60.0
ANSWER_DELAY = 20.0  # the answer comes this long after the load started (virtual seconds)
REFUSED_FOR = 90.0  # the first attempts are refused by a rate limit for this long
SPAM_WINDOW = 1.0

pytestmark = pytest.mark.anyio


class SlowAnswerAccount:
    """Just enough of an AccountClient: loads start on arrival, answers come late."""

    api = ApiKind.COMMUNITY
    name = "acct"
    queue_limit = 5
    spam_window = SPAM_WINDOW

    def __init__(self, clock: FakeClock, *, lose_answers: bool = False) -> None:
        self.clock = clock
        self.lose_answers = lose_answers
        self.started: dict[str, float] = {}

    async def load(
        self, model_id: str, spec: Mapping[str, str], *, deadline: float | None = None
    ) -> Accepted:
        sent = self.clock.now()
        await self.clock.sleep(REFUSED_FOR)  # refused until then, as the client retries
        self.started[model_id] = self.clock.now()
        await self.clock.sleep(ANSWER_DELAY)
        if self.lose_answers:  # the load started, its answer never came
            raise ServerError("Server Error", account="acct", endpoint="v3/load_model")
        return Accepted("model load started", sent + REFUSED_FOR)

    async def read_live(self, *, deadline: float | None = None) -> LiveState:
        return listing(self.started, self.clock.now())


def listing(started: Mapping[str, float], now: float) -> LiveState:
    """The account's listing at ``now``: a load is ready once its load time has passed."""
    models = {
        model_id: LiveModel(
            model_id,
            Condition.READY if now - at >= LOAD_SECONDS else Condition.LOADING,
            "model_ready" if now - at >= LOAD_SECONDS else "model_loading",
        )
        for model_id, at in started.items()
    }
    return LiveState("acct", models)


def load_change(model_id: str) -> ModelChange:
    """The plan's load of a missing, declared model (also used by the other apply tests)."""
    return ModelChange(
        model_id=model_id,
        action=Action.LOAD,
        reason="missing",
        condition=Condition.MISSING,
        declared=True,
        managed=False,
        spec={"url": f"org/{model_id}"},
        spec_hash=f"sha256:{model_id}",
    )


def one_account(
    client: object,
    clock: FakeClock,
    *,
    loads: int,
    poll_interval: float,
    shortest: float | None = None,
) -> AccountApply:
    """The apply of ``loads`` loads on the stub ``client``, with a deadline 1000 s away."""
    plan = AccountPlan(
        account="acct",
        api=ApiKind.COMMUNITY,
        live_fingerprint="",
        changes=tuple(load_change(f"m{n}") for n in range(loads)),
    )
    return AccountApply(
        plan,
        client,  # type: ignore[arg-type]
        LiveState("acct", {}),
        ApplyOptions(wait=True, timeout=1000.0, poll_interval=poll_interval),
        NullProgress(),
        clock.now() + 1000.0,
        load_times=LoadTimes(shortest=shortest),
    )


@pytest.mark.parametrize("lose_answers", [False, True], ids=["answered", "answers-lost"])
async def test_the_learnt_load_time_is_never_shorter_than_the_servers(lose_answers: bool) -> None:
    """Also when the answers are lost and a listing proves the loads landed."""
    clock = FakeClock()
    client = SlowAnswerAccount(clock, lose_answers=lose_answers)
    run = one_account(client, clock, loads=7, poll_interval=0.0)  # two waves under a queue of 5
    await run.run()
    assert all(item.outcome is not None for item in run.items.values())
    assert {m.condition for m in run.live.models.values()} == {Condition.READY}
    shortest = run.load_times.shortest
    assert shortest is not None
    assert shortest >= LOAD_SECONDS  # never shorter than the server's
    if lose_answers:  # no answer says when the accepted attempt began: the call's start does
        assert shortest < LOAD_SECONDS + REFUSED_FOR + ANSWER_DELAY + 5
    else:  # the refused attempts before the accepted one do not count
        assert shortest < LOAD_SECONDS + REFUSED_FOR


class QueuedLoads:
    """A server that takes loads one by one: each starts when answered, 5 s after the last."""

    api = ApiKind.COMMUNITY
    name = "acct"
    queue_limit = 5
    spam_window = SPAM_WINDOW

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.started: dict[str, float] = {}
        self.listings = 0

    async def load(
        self, model_id: str, spec: Mapping[str, str], *, deadline: float | None = None
    ) -> Accepted:
        sent = self.clock.now()
        await self.clock.sleep(5.0 * int(model_id.removeprefix("m")))  # 0, 5, … 20 s
        self.started[model_id] = self.clock.now()
        return Accepted("model load started", sent, self.clock.now())

    async def read_live(self, *, deadline: float | None = None) -> LiveState:
        self.listings += 1
        return listing(self.started, self.clock.now())


async def test_once_every_load_is_sent_one_listing_sees_a_wave_whose_answers_came_apart() -> None:
    """The wait is for the last load of the wave to be done, not the first (issue 11)."""
    clock = FakeClock()
    client = QueuedLoads(clock)
    # one wave, the load time learnt by the fleet already
    run = one_account(client, clock, loads=5, poll_interval=30.0, shortest=LOAD_SECONDS)
    await run.run()
    assert {item.outcome for item in run.items.values()} == {Outcome.DONE}
    # one listing, when the last answered load can be done (20 s + 60 s); polling for the
    # earliest saw one load at 60 s, and the others on the next poll, at 90 s
    assert client.listings == 1
    assert clock.now() - 1000.0 == pytest.approx(20.0 + LOAD_SECONDS)


async def test_an_intent_noted_for_a_request_that_never_left_is_abandoned_at_the_end() -> None:
    """The first wave's intents are noted before the wait for the leaders (issue 11): one
    that is not sent after all must not leave the next run waiting for a load in flight."""
    clock = FakeClock()
    run = one_account(QueuedLoads(clock), clock, loads=2, poll_interval=30.0)
    recorded: list[dict[str, object]] = []

    async def record(entries: Mapping[str, object]) -> None:
        recorded.append(dict(entries))

    run.record = record
    run.items = {c.model_id: _Item(c) for c in run.plan.changes}
    noted, kept = run.items["m0"], run.items["m1"]
    await run._note_intents([noted])
    assert recorded and run.entries["m0"].pending is not None
    assert run.final_event(noted) is LedgerEvent.ABANDONED
    assert run.final_event(kept) is None  # never noted, never sent: nothing to undo
    await run.record_outcomes()
    assert recorded[-1] == {"m0": None}  # no entry was confirmed before: the intent goes


class FullQueue(QueuedLoads):
    """An account whose queue is full of loads it did not start, for 60 s; answers at once."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.started = {f"other{n}": clock.now() for n in range(5)}

    async def load(
        self, model_id: str, spec: Mapping[str, str], *, deadline: float | None = None
    ) -> Accepted:
        self.started[model_id] = self.clock.now()
        return Accepted("model load started", self.clock.now(), self.clock.now())


async def test_a_leader_whose_queue_is_full_does_not_hold_the_others_back() -> None:
    """It must wait for a listing before it sends: the others do not wait LEAD_WAIT for it."""
    clock = FakeClock()
    client = FullQueue(clock)
    run = one_account(client, clock, loads=1, poll_interval=30.0)
    run.live = await client.read_live()  # the plan's listing: five loads in progress
    run.load_times = LoadTimes(scouts=["acct"], _leading=Awaited({"acct"}))
    released: list[float] = []

    async def other_account() -> None:
        await run.load_times.after_leaders("other", clock)
        released.append(clock.now() - 1000.0)

    async with anyio.create_task_group() as group:
        group.start_soon(run.run)
        group.start_soon(other_account)
    assert released == [0.0]  # before: LEAD_WAIT (2 s), for a leader that could not lead
    assert {item.outcome for item in run.items.values()} == {Outcome.DONE}


async def test_intents_noted_while_waiting_for_the_leaders_are_taken_back_if_stopped() -> None:
    """Stopped (Ctrl-C) before its loads were sent: the next run must not wait for them."""
    clock = FakeClock()
    run = one_account(QueuedLoads(clock), clock, loads=7, poll_interval=30.0)
    run.load_times = LoadTimes(scouts=["leader"], _leading=Awaited({"leader"}))  # never answered
    recorded: list[dict[str, object]] = []

    async def record(entries: Mapping[str, object]) -> None:
        recorded.append(dict(entries))

    run.record = record
    async with anyio.create_task_group() as group:
        group.start_soon(run.run)
        await clock.sleep(1.0)  # it waits for the leader (at most LEAD_WAIT, 2 s)
        assert len(recorded) == 1 and len(recorded[0]) == 5  # the first wave's intents
        group.cancel_scope.cancel()
    assert recorded[-1] == {f"m{n}": None for n in range(5)}  # taken back, nothing sent
    assert not any(item.sent for item in run.items.values())
    assert all(run.entries.get(f"m{n}") is None for n in range(7))


class ScoutedServer(QueuedLoads):
    """Loads start on arrival and take 60 s; notes when it was listed and loaded."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.listed_at: list[float] = []
        self.loaded_at: list[float] = []

    async def load(
        self, model_id: str, spec: Mapping[str, str], *, deadline: float | None = None
    ) -> Accepted:
        now = self.clock.now()
        self.started[model_id] = now
        self.loaded_at.append(now - 1000.0)
        return Accepted("model load started", now, now)

    async def read_live(self, *, deadline: float | None = None) -> LiveState:
        self.listed_at.append(self.clock.now() - 1000.0)
        return listing(self.started, self.clock.now())


async def test_a_scout_lists_when_its_loads_can_be_done_once_another_learnt_the_time() -> None:
    """Learnt at 20 s by another scout, before this one's first poll (30 s, too early for its
    60 s loads): it lists once, at 60 s, not at 30 s (nothing) and then at 60 s."""
    clock = FakeClock()
    server = ScoutedServer(clock)
    run = one_account(server, clock, loads=10, poll_interval=30.0)
    run.load_times = LoadTimes(scouts=["acct"])

    async def another_scout_learns() -> None:
        await clock.sleep(20.0)
        run.load_times.saw(LOAD_SECONDS)

    async with anyio.create_task_group() as group:
        group.start_soon(run.run)
        group.start_soon(another_scout_learns)
    assert {item.outcome for item in run.items.values()} == {Outcome.DONE}
    assert server.listed_at[0] == pytest.approx(60.0)  # before: 30 s (nothing), then 60 s
    assert server.loaded_at[5:] == [pytest.approx(60.0)] * 5


class RoundTrips(ScoutedServer):
    """Loads start when they arrive; each answer comes back ``ROUND_TRIP`` seconds later."""

    async def load(
        self, model_id: str, spec: Mapping[str, str], *, deadline: float | None = None
    ) -> Accepted:
        started = await super().load(model_id, spec, deadline=deadline)
        await self.clock.sleep(ROUND_TRIP)
        return Accepted(started.message, started.sent_at, self.clock.now())


ROUND_TRIP = 10.0


async def test_a_listing_is_not_late_by_the_round_trip_every_answer_takes() -> None:
    """The quickest round trip of the run is the network's share of every answer's time, not
    the server's: with 10 s round trips (the loads started as they arrived) and 60 s loads,
    the listing comes at 65 s (was 70 s). Half of it is kept, as a server may start a load
    anywhere in its round trip: never sooner than the loads can be done (60 s)."""
    clock = FakeClock()
    server = RoundTrips(clock)
    run = one_account(server, clock, loads=5, poll_interval=30.0, shortest=LOAD_SECONDS)
    await run.run()
    assert {item.outcome for item in run.items.values()} == {Outcome.DONE}
    assert run.load_times.quickest_answer == pytest.approx(ROUND_TRIP)
    assert server.listed_at == [pytest.approx(LOAD_SECONDS + ROUND_TRIP / 2)]  # one, seeing all


class WrittenLate(ScoutedServer):
    """Loads wait 20 s for a connection before they are written (and start)."""

    async def load(
        self, model_id: str, spec: Mapping[str, str], *, deadline: float | None = None
    ) -> Accepted:
        await self.clock.sleep(20.0)
        return await super().load(model_id, spec, deadline=deadline)


async def test_a_scouts_first_listing_is_timed_from_when_its_loads_left() -> None:
    """A scout samples the time since its loads left: its first listing comes an interval
    after them (50 s), not after the account's listing (30 s), whatever held them back."""
    server = WrittenLate(FakeClock())
    await one_scout(server, poll_interval=30.0)
    assert server.listed_at[0] == pytest.approx(20.0 + 30.0)


async def one_scout(server: ScoutedServer, poll_interval: float) -> AccountApply:
    """The apply of five loads on ``server`` by the run's one scout, run to its end."""
    run = one_account(server, server.clock, loads=5, poll_interval=poll_interval)
    run.load_times = LoadTimes(scouts=["acct"])
    await run.run()
    assert {item.outcome for item in run.items.values()} == {Outcome.DONE}
    return run


class SlowListing(ScoutedServer):
    """Loads start at once; a listing takes 5 s to answer."""

    async def read_live(self, *, deadline: float | None = None) -> LiveState:
        self.listed_at.append(self.clock.now() - 1000.0)
        await self.clock.sleep(5.0)
        return listing(self.started, self.clock.now())


def recording(run: AccountApply, clock: FakeClock) -> list[tuple[float, dict[str, object]]]:
    """What ``run`` records, with when (seconds from the start)."""
    records: list[tuple[float, dict[str, object]]] = []

    async def record(entries: Mapping[str, object]) -> None:
        records.append((clock.now() - 1000.0, dict(entries)))

    run.record = record
    return records


async def test_the_next_waves_intents_are_written_while_the_listing_that_frees_it_is_out() -> None:
    """The second wave leaves as the listing shows the queue free (65 s), its intents on disk
    since the listing left (60 s), not written only then."""
    clock = FakeClock()
    server = SlowListing(clock)
    run = one_account(server, clock, loads=7, poll_interval=30.0, shortest=LOAD_SECONDS)
    records = recording(run, clock)
    await run.run()
    assert {item.outcome for item in run.items.values()} == {Outcome.DONE}
    intents = [
        (at, entries)
        for at, entries in records
        if any(getattr(e, "pending", None) is not None for e in entries.values())
        and "m5" in entries
    ]
    assert intents and intents[0][0] == pytest.approx(60.0)  # as the listing left
    assert server.loaded_at[5:] == [pytest.approx(65.0)] * 2  # as it answered


async def test_intents_written_while_a_listing_is_out_are_taken_back_if_stopped() -> None:
    """Stopped (Ctrl-C) before the listing answered: the loads were never sent."""
    clock = FakeClock()
    server = SlowListing(clock)
    run = one_account(server, clock, loads=7, poll_interval=30.0, shortest=LOAD_SECONDS)
    records = recording(run, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(run.run)
        await clock.sleep(62.0)  # the listing left at 60 s, answers at 65 s
        group.cancel_scope.cancel()
    at, taken_back = records[-1]
    assert at == pytest.approx(62.0) and taken_back == {"m5": None, "m6": None}
    assert not any(run.items[m].sent for m in ("m5", "m6"))
    assert all(run.entries.get(m) is None for m in ("m5", "m6"))


async def test_marking_a_wave_loading_copies_the_listing_once_not_once_per_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sent load is marked loading in apply's own copy of the listing, made once per listing:
    a copy per load was O(models × loads), 2 s of CPU for 1,000 loads into 20k models."""
    made: list[int] = []

    class CountedLiveState(LiveState):
        def __init__(self, account: str, models: Mapping[str, LiveModel]) -> None:
            made.append(len(models))
            super().__init__(account, models)

    monkeypatch.setattr(apply_module, "LiveState", CountedLiveState)
    clock = FakeClock()
    server = ScoutedServer(clock)
    run = one_account(server, clock, loads=5, poll_interval=30.0, shortest=LOAD_SECONDS)
    run.live = LiveState(
        "acct", {f"other{n}": LiveModel(f"other{n}", Condition.READY) for n in range(1000)}
    )
    await run.run()
    assert {item.outcome for item in run.items.values()} == {Outcome.DONE}
    assert made == [1000]  # one copy for the wave of five, before the listing that saw them
    assert run.counts() == {"ready": 5}


class UnevenLoads(ScoutedServer):
    """Three loads of someone else hold places for 1000 s; m1 takes 90 s, the others 60 s;
    every answer comes 10 s after its load started."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.started = {f"other{n}": clock.now() for n in range(3)}
        self.received: list[str] = []

    async def load(
        self, model_id: str, spec: Mapping[str, str], *, deadline: float | None = None
    ) -> Accepted:
        sent = self.clock.now()
        self.received.append(model_id)
        self.started[model_id] = sent + 30.0 if model_id == "m1" else sent  # m1: 90 s
        await self.clock.sleep(ROUND_TRIP)
        return Accepted("model load started", sent, self.clock.now())

    async def read_live(self, *, deadline: float | None = None) -> LiveState:
        self.listed_at.append(self.clock.now() - 1000.0)
        now = self.clock.now()
        models = listing({k: v for k, v in self.started.items() if k.startswith("m")}, now)
        others = {
            k: LiveModel(k, Condition.LOADING, "model_loading")
            for k in self.started
            if "other" in k
        }
        return LiveState("acct", {**models.models, **others})


async def test_intents_written_ahead_and_not_sent_are_taken_back_if_stopped_during_a_wave() -> None:
    """Places for two were due at the listing (65 s), so two intents were written; it showed
    one free (m1 was still loading): m3's intent waits. Stopped while m2 is out, m3's intent is
    taken back; nothing beyond the places due was ever written."""
    clock = FakeClock()
    server = UnevenLoads(clock)
    run = one_account(server, clock, loads=8, poll_interval=30.0, shortest=LOAD_SECONDS)
    run.live = await server.read_live()  # the plan's listing: three places held
    server.listed_at.clear()
    records = recording(run, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(run.run)
        await clock.sleep(70.0)  # the listing at 65 s freed one place: m2 went out
        group.cancel_scope.cancel()
    assert server.listed_at == [pytest.approx(65.0)]
    assert server.received == ["m0", "m1", "m2"]
    noted = {model_id for _, entries in records for model_id in entries}
    assert noted == {"m0", "m1", "m2", "m3"}  # never more intents than places due
    assert run.entries.get("m3") is None  # taken back: its request never left
    assert run.entries["m2"].pending is not None  # out when stopped: it may have landed


class HeldListing(ScoutedServer):
    """A listing whose request waits 5 s (a spam-window turn, a retry) before it is written."""

    async def read_live(self, *, deadline: float | None = None) -> LiveState:
        await self.clock.sleep(5.0)
        self.listed_at.append(self.clock.now() - 1000.0)
        state = listing(self.started, self.clock.now())
        return LiveState(state.account, state.models, asked_at=self.clock.now())


async def test_a_load_time_is_learnt_from_when_the_listing_was_written_not_asked_for() -> None:
    """Polled at 57 s, written at 62 s, it sees the 60 s loads ready: the time learnt is 62 s.
    From the poll's start it would be 57 s, shorter than the server's: later listings early."""
    server = HeldListing(FakeClock())
    run = await one_scout(server, poll_interval=57.0)
    assert server.listed_at == [pytest.approx(62.0)]
    assert run.load_times.shortest == pytest.approx(62.0)


async def test_intents_whose_write_a_stop_interrupts_are_still_taken_back() -> None:
    """The journal writes a batch whatever becomes of the writers waiting on it: stopped
    while the first wave's intents were being written (here 1 s, before the wait for the
    leaders), they are on disk all the same, and must be taken back."""
    clock = FakeClock()
    run = one_account(QueuedLoads(clock), clock, loads=5, poll_interval=30.0)
    run.load_times = LoadTimes(scouts=["leader"], _leading=Awaited({"leader"}))  # never answered
    records: list[dict[str, object]] = []

    async def slow_record(entries: Mapping[str, object]) -> None:
        records.append(dict(entries))  # on disk at once, acknowledged a second later
        await clock.sleep(1.0)

    run.record = slow_record
    async with anyio.create_task_group() as group:
        group.start_soon(run.run)
        await clock.sleep(0.5)
        group.cancel_scope.cancel()
    assert sorted(records[0]) == [f"m{n}" for n in range(5)]  # the first wave's intents
    assert records[-1] == {f"m{n}": None for n in range(5)}  # taken back
    assert not any(item.sent for item in run.items.values())


def test_places_due_counts_only_the_loads_that_hold_places() -> None:
    """An enterprise load past the load grace no longer holds a place (the server's limit
    decides): the places due are the free ones, not those plus the loads counted again."""
    clock = FakeClock()
    plan = AccountPlan(
        account="acct",
        api=ApiKind.ENTERPRISE,
        live_fingerprint="",
        changes=tuple(load_change(f"m{n}") for n in range(4)),
    )
    client = ScoutedServer(clock)
    client.queue_limit = 2
    run = AccountApply(
        plan,
        client,  # type: ignore[arg-type]
        LiveState("acct", {}),
        ApplyOptions(wait=True, timeout=1000.0, poll_interval=30.0, load_grace=100.0),
        NullProgress(),
        clock.now() + 1000.0,
        load_times=LoadTimes(shortest=LOAD_SECONDS),
    )
    run.items = {c.model_id: _Item(c) for c in plan.changes}
    for model_id in ("m0", "m1"):  # sent at the start, not listed: enterprise lists only ready
        item = run.items[model_id]
        item.sent, item.sent_at, item.requested_at = True, clock.now(), clock.now()
    clock.advance(70.0)  # within the grace, and past the learnt time: both places due
    assert run._in_flight() == 2 and run._places_due() == 2
    clock.advance(80.0)  # past the grace: no place held, the two free ones only
    assert run._in_flight() == 0 and run._places_due() == 2
