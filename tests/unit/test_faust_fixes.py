"""Patches to Faust: the fetcher's eager delivery (5) gives Service.wait_first's results;
a static member whose URL changed exits saying why (6); a commit ends its partitions'
transactions concurrently (7); paused changelogs are paused in aiokafka too (9); table
recovery takes ready changelog records at once, and answers need_recovery as Faust (10);
the livelock check leaves out partitions paused in aiokafka (11)."""

import asyncio
import logging
import threading
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata
from faust.tables import recovery
from faust.tables.recovery import Recovery
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st
from mode import Service
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from streams import faust_fixes
from streams.app import Pipeline
from streams.faust_fixes import Resumed, _commit_transactions_together, _wait_first_eager
from streams.settings import Settings


class Fetching(Service):
    """What _wait_first_eager reads of Faust's consumer."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


async def queued(log: list[str]) -> str:
    log.append("queued")
    return "done"


async def blocked(log: list[str], gate: asyncio.Event) -> str:
    log.append("waiting")
    await gate.wait()
    log.append("resumed")
    return "late"


@pytest.mark.asyncio
async def test_a_callback_that_does_not_wait_runs_at_once() -> None:
    consumer, log = Fetching(), []
    other = consumer.suspend_flow.wait()
    result = await _wait_first_eager(consumer, queued(log), other)
    assert log == ["queued"] and result.results == ["done"] and not result.stopped
    assert other.cr_frame is None  # closed, not left unawaited


@pytest.mark.asyncio
async def test_a_callback_that_waits_is_resumed_where_it_stopped() -> None:
    consumer, log, gate = Fetching(), [], asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, gate.set)
    result = await _wait_first_eager(consumer, blocked(log, gate), consumer.suspend_flow.wait())
    assert log == ["waiting", "resumed"] and result.results == ["late"]


@pytest.mark.asyncio
async def test_a_suspended_flow_wins_and_cancels_the_callback() -> None:
    consumer, log, gate = Fetching(), [], asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)
    result = await _wait_first_eager(consumer, blocked(log, gate),
                                     consumer.suspend_flow.wait())
    gate.set()
    await asyncio.sleep(0.01)
    assert log == ["waiting"]  # stopped at the gate, never resumed
    assert result.results == [True]  # the suspend_flow.wait() won


@pytest.mark.asyncio
async def test_resumed_passes_errors_and_cancellation_to_the_coroutine() -> None:
    seen: list[str] = []

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad")

    async def sleeps() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    coro = fails()
    with pytest.raises(ValueError, match="bad"):
        await Resumed(coro, coro.send(None))
    coro = sleeps()
    task = asyncio.ensure_future(Resumed(coro, coro.send(None)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


def test_a_returning_static_member_with_a_new_url_exits_saying_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(processing_guarantee="at_least_once", topic_prefix="unit-url.",
                        web_port=6101)
    assignor = Pipeline(settings).app.assignor
    exits: list[str] = []
    monkeypatch.setattr(faust_fixes, "exit_misconfigured", exits.append)

    def assignment(url: str) -> ConsumerProtocolMemberAssignment:
        metadata = ClientMetadata(assignment=ClientAssignment(actives={}, standbys={}),
                                  url=url, changelog_distribution={})
        return ConsumerProtocolMemberAssignment(
            0, [], assignor._compress(metadata.dumps()))

    assignor.on_assignment(assignment(str(assignor._url)))
    assert exits == []
    assignor.on_assignment(assignment("http://127.0.0.1:6100"))
    assert len(exits) == 1 and "http://127.0.0.1:6100" in exits[0]
    assert "WAIVER_INSTANCE_ID" in exits[0]


class TransactionProducer:
    """The calls a commit makes on one partition's aiokafka transactional producer."""

    def __init__(self, name: str, calls: list[str], gate: asyncio.Event,
                 error: Exception | None = None) -> None:
        self.name, self.calls, self.gate, self.error = name, calls, gate, error

    async def send_offsets_to_transaction(self, offsets: object, group_id: str) -> None:
        self.calls.append(f"{self.name} offsets {offsets} {group_id}")
        await self.gate.wait()  # the broker's round trips
        if self.error is not None:
            raise self.error

    async def commit_transaction(self) -> None:
        self.calls.append(f"{self.name} commit")

    async def begin_transaction(self) -> None:
        self.calls.append(f"{self.name} begin")


class Producers:
    """What the patched Producer.commit_transactions reads of Faust's producer."""

    def __init__(self, producers: dict[str, TransactionProducer]) -> None:
        self._transaction_producers = producers
        self._trn_locks = {tid: asyncio.Lock() for tid in producers}
        self.committed_at: dict[str, float] = {}  # Faust's stall detector reads this
        thread = SimpleNamespace(tp_last_committed_at=self.committed_at)
        self.app = SimpleNamespace(consumer=SimpleNamespace(_thread=thread))


@pytest.mark.asyncio
async def test_a_commit_ends_the_partitions_transactions_concurrently() -> None:
    calls: list[str] = []
    gate = asyncio.Event()
    faust_producer = Producers({tid: TransactionProducer(tid, calls, gate)
                                for tid in ("app-0", "app-1")})
    commit = asyncio.create_task(_commit_transactions_together(
        faust_producer, {"app-0": {"tp0": 5}, "app-1": {"tp1": 7}}, "app"))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    # Both wait on the broker at once; one after the other, the second would not start.
    assert calls == ["app-0 offsets {'tp0': 5} app", "app-1 offsets {'tp1': 7} app"]
    gate.set()
    await asyncio.wait_for(commit, 1)
    assert sorted(calls[2:]) == ["app-0 begin", "app-0 commit", "app-1 begin", "app-1 commit"]
    assert calls.index("app-0 commit") < calls.index("app-0 begin")
    assert set(faust_producer.committed_at) == {"tp0", "tp1"}


@pytest.mark.asyncio
async def test_a_failed_transaction_fails_the_commit_and_releases_its_lock() -> None:
    calls: list[str] = []
    gate = asyncio.Event()
    gate.set()
    faust_producer = Producers({"app-0": TransactionProducer("app-0", calls, gate,
                                                             error=RuntimeError("fenced")),
                                "app-1": TransactionProducer("app-1", calls, gate)})
    with pytest.raises(RuntimeError, match="fenced"):
        await _commit_transactions_together(
            faust_producer, {"app-0": {"tp0": 5}, "app-1": {"tp1": 7}}, "app")  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert "app-0 commit" not in calls
    assert "app-1 commit" in calls
    assert set(faust_producer.committed_at) == {"tp1"}
    assert not any(lock.locked() for lock in faust_producer._trn_locks.values())


def run_once(loop: asyncio.AbstractEventLoop) -> None:
    """Let a (consumer thread's) loop run what was scheduled on it, in a thread."""
    thread = threading.Thread(target=loop.run_until_complete, args=(asyncio.sleep(0),))
    thread.start()
    thread.join()


@pytest.mark.asyncio
async def test_paused_changelogs_are_paused_in_aiokafka_too() -> None:
    pipeline = Pipeline(Settings(processing_guarantee="at_least_once", topic_prefix="pausing."))
    consumer: Any = pipeline.app.consumer
    changelog = TP(pipeline.customers.changelog_topic.get_topic_name(), 3)
    stream = TP(pipeline.names.cancellations, 3)
    inner = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")  # never started
    inner.assign([TopicPartition(*changelog), TopicPartition(*stream)])
    consumer._thread._consumer = inner
    loop = consumer._thread.thread_loop
    try:
        consumer.pause_partitions([changelog, stream])
        run_once(loop)
        # A paused changelog is no longer fetched; stream partitions keep Faust's pause
        # (the stream's flow control), which stops delivery, not fetching.
        assert inner.paused() == {changelog}
        assert changelog in consumer._paused_partitions and stream in consumer._paused_partitions
        consumer.resume_partitions([changelog])
        run_once(loop)
        assert inner.paused() == set()
        consumer.pause_partitions([TP(changelog.topic, 5)])  # not assigned here: ignored
        run_once(loop)
        assert inner.paused() == set()
    finally:
        loop.close()
        await inner.stop()


@pytest.mark.asyncio
async def test_the_livelock_check_leaves_out_partitions_paused_in_aiokafka(caplog) -> None:
    pipeline = Pipeline(Settings(processing_guarantee="at_least_once", topic_prefix="livelock."))
    thread: Any = pipeline.app.consumer._thread
    changelog = TP(pipeline.customers.changelog_topic.get_topic_name(), 3)
    stream = TP(pipeline.names.cancellations, 3)
    inner = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")  # never started
    inner.assign([TopicPartition(*changelog), TopicPartition(*stream)])
    inner._fetcher = SimpleNamespace(_subscriptions=inner._subscription)  # as Faust reads it
    thread._consumer = inner
    pipeline.app.consumer.pause_partitions([changelog])  # as after recovery (item 9)
    run_once(thread.thread_loop)
    thread.time_started = 0.0  # set at start: the worker has been up for a while
    now = thread.tp_fetch_request_timeout_secs + 1
    try:
        with caplog.at_level(logging.ERROR):
            thread.verify_event_path(now, changelog)
            assert "has not sent fetch request" not in caplog.text
            thread.verify_event_path(now, stream)  # never fetched either, and not paused
            assert f"{stream}" in caplog.text and "has not sent fetch request" in caplog.text
    finally:
        thread.thread_loop.close()
        inner._fetcher = None
        await inner.stop()


async def test_recovery_takes_a_ready_changelog_record_at_once(monkeypatch) -> None:
    faust_fixes.install()
    waits: list[object] = []
    real_wait_for = asyncio.wait_for

    async def counted(awaitable: Any, timeout: float | None) -> Any:
        waits.append(awaitable)
        return await real_wait_for(awaitable, timeout)

    monkeypatch.setattr(asyncio, "wait_for", counted)
    flow = FlowControlEvent()
    flow.resume()
    queue: ThrowableQueue = ThrowableQueue(maxsize=10, flow_control=flow)  # as Faust's
    await queue.put("record")
    # How faust.tables.recovery takes each changelog record:
    assert await recovery.asyncio.wait_for(queue.get(), timeout=5.0) == "record"
    assert waits == []  # no task, no timer
    # An empty queue waits, as before: for a record, or until the timeout.
    asyncio.get_running_loop().call_later(0.01, queue.put_nowait, "later")
    assert await recovery.asyncio.wait_for(queue.get(), timeout=5.0) == "later"
    with pytest.raises(asyncio.TimeoutError):
        await recovery.asyncio.wait_for(queue.get(), timeout=0.01)
    assert len(waits) == 2
    assert recovery.asyncio.TimeoutError is asyncio.TimeoutError


@given(st.dictionaries(st.sampled_from([TP("t", n) for n in range(4)]),
                       st.tuples(st.none() | st.integers(-1, 5), st.integers(-1, 5))))
def test_need_recovery_answers_as_faust_s(partitions: dict[TP, tuple[int | None, int]]
                                          ) -> None:
    faust_fixes.install()
    state = SimpleNamespace(active_highwaters={tp: hw for tp, (hw, _) in partitions.items()},
                            active_offsets=Counter({tp: off for tp, (_, off) in
                                                    partitions.items()}),
                            app=SimpleNamespace(consumer=SimpleNamespace()))
    faust_s = any(v > 0 for v in Recovery.active_remaining(state).values())  # unpatched
    assert Recovery.need_recovery(state) is faust_s


def test_a_changelog_ending_in_markers_is_read_once_fetched_past_them() -> None:
    faust_fixes.install()
    tp = TP("customers-changelog", 0)
    # Highwater 9 (Faust's end - 1): a commit marker. The last record is at 8.
    thread = SimpleNamespace()
    state = SimpleNamespace(active_highwaters={tp: 9}, active_offsets=Counter({tp: 8}),
                            app=SimpleNamespace(consumer=SimpleNamespace(_thread=thread)))
    assert Recovery.need_recovery(state)  # nothing fetched yet
    thread._waiver_fetched = {tp: (9, 8)}
    assert Recovery.need_recovery(state)  # not past the marker yet
    state.active_offsets[tp] = 7
    thread._waiver_fetched = {tp: (10, 8)}
    assert Recovery.need_recovery(state)  # past it, but record 8 not applied yet
    state.active_offsets[tp] = 8
    assert not Recovery.need_recovery(state)
    assert state.active_offsets[tp] == 9


class Seeking:
    """What _seek_stream_partitions calls on aiokafka's consumer."""

    def __init__(self, committed: dict[TopicPartition, int | None]) -> None:
        self.committed, self.calls = committed, []

    async def seek_to_committed(self) -> dict[TopicPartition, int | None]:
        return self.committed

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.calls.append(("seek", tp, offset))

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.calls.append(("beginning", *tps))

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        self.calls.append(("end", *tps))


@pytest.mark.parametrize("reset", ["earliest", "latest"])
async def test_uncommitted_stream_partitions_are_sought_in_one_call(reset: str) -> None:
    a, b, zero, done = (TopicPartition("in", n) for n in range(4))
    changelog = TopicPartition("customers-changelog", 0)
    consumer = Seeking({a: None, zero: 0, done: 7, changelog: None, b: None})
    await faust_fixes._seek_stream_partitions(consumer, {"customers-changelog"}, reset)
    assert consumer.calls == [("seek", zero, 0),
                              ("beginning" if reset == "earliest" else "end", a, b)]
