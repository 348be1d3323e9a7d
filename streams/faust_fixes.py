"""Patches to faust-streaming 0.15: fixes for its table recovery, each seen losing data
here (1, 2, 4), four costs (3, 5, 7, 10), a hang made an error (6), a stall in
aiokafka's producer (8), latency spikes after every recovery (9), a false alarm (11)
and a 10 s wait in every recovery under exactly-once (12).

1. Under exactly-once, recovery takes each changelog's end from
   `last_stable_offset()`, the value seen in the *last fetch*, which is unknown
   right after an assignment: recovery then reads nothing and the worker runs on
   empty tables (seen after a broker restart: every customer decided again). The
   fix asks the broker (ListOffsets, read_committed: the last stable offset).

2. After recovery, `Recovery.on_recovery_completed` (and `_resume_streams`) resume
   the stream partitions and seek them to the committed offsets while the
   consumer's flow is still active, then resume flow control, which *clears* the
   stream queues. Records fetched in between are dropped after the consumer has
   marked them read, so the worker never processes them (seen here: a round
   trigger lost after a restart, the round never finishing). Stopping the flow
   first means nothing reaches the streams until the seek and the clear are done;
   the original code resumes the flow at its end.

   A fetch already in flight when the flow stops is the other half: Faust's
   `getmany` drops the records it returns while the flow is stopped, and the
   client has already moved past them. So the fix also waits for the fetch in
   flight to return before the seek; the next fetch waits for the flow to resume.

4. That seek ("to the committed offsets") skips every partition without a
   committed offset, or with 0: aiokafka's `seek_to_committed` seeks only when
   the offset is above 0. Records of such a partition fetched and dropped during
   the rebalance are then never read again (seen here: the round triggers of the
   partitions a worker took over from a killed one, in 6 of 7 runs once the fetch
   wait was 100 ms; cancellations never decided, with Faust's 1500 ms). The fix
   seeks those stream partitions to offset 0, or by the reset policy (all of them
   in one call: one call each made a worker's start 5 s longer).

3. Not a defect but a hard-coded setting: the stream consumer's fetch may wait
   1500 ms for data. A broker that answers a waiting fetch only when the wait
   expires (tansu) adds that to every event's latency. `fetch_max_wait_ms` makes
   it configurable; Apache Kafka answers as soon as data arrives either way.

5. Not a defect but a cost: the fetcher hands each message to the streams through
   `Service.wait_first(callback(message), suspend_flow.wait())`: four tasks and an
   `asyncio.wait`, about 45 µs, to deliver a message that is almost always queued
   without waiting. The patch runs the callback up to its first wait and only
   then, if it has to wait, falls back to `wait_first` from where it stopped.
   While the flow is suspended (or the consumer stopping) it is `wait_first` as is.

6. With static membership (`WAIVER_INSTANCE_ID`) Apache Kafka hands a returning
   member its previous assignment without a rebalance, and that assignment carries
   the URL the worker had then. If the URL changed (another port or host), Faust's
   assignor fails an `assert` inside aiokafka's coordinator task, which dies: the
   worker hangs, never ready, with nothing in its log that says why. The patch
   says why and exits (78, a configuration error) so a supervisor sees it.

7. Not a defect but a cost: under exactly-once a commit ends one transaction per
   source partition (AddOffsetsToTxn, TxnOffsetCommit, EndTxn: three broker round
   trips each), and Faust ends them one after the other. Outputs become visible to
   read_committed consumers only then, so with 8 partitions a commit took 8 × 3
   round trips of every event's latency. The transactions are independent (one
   producer, transactional id and lock each): the patch ends them concurrently,
   and tells the app (`on_transaction_committed`) under the transaction's lock, so
   the state stores write what the transaction committed (streams/state_store.py).
   It also records each commit where Faust's stall detector looks for one: under
   exactly-once it never did, and after 5 minutes of a backlog the worker logged
   "Has not committed ... at all since worker start" for every partition, every few
   seconds, while it was committing.

8. aiokafka's client refreshes metadata only for the topics it tracks, and a send
   (`_wait_on_metadata`) tracks its topic only if the topic's metadata is missing at
   that moment. A topic known from a full refresh (the client asks for every topic
   while it tracks none) then drops out of the next refresh once other topics are
   tracked: its batches have no leader, and the sender retries the refresh for ever
   (seen here: a round's tasks stuck in the producer, nothing logged). The patch
   tracks every topic sent to.

9. Faust pauses a partition by no longer asking aiokafka for its records; aiokafka
   goes on fetching it. After recovery Faust pauses the changelogs it has read, and
   the worker writes to them with every event: each fetch then brings changelog
   records nobody takes, and aiokafka sends no fetch to that broker until such
   records are 100 ms old (its prefetch backoff), so the streams waited up to
   100 ms, again and again, until every changelog partition held stale records
   (seen here: latency at 1,000 events/s in a 100 ms sawtooth up to 221 ms for the
   first second after a restart). The patch pauses and resumes the changelog
   partitions in aiokafka too.

10. Not a defect but a cost: table recovery takes each changelog record with
    `asyncio.wait_for(queue.get(), timeout=5.0)`, a task, a timer and two loop turns
    per record even when the queue holds records, and after each record recomputes
    every partition's remaining offsets as a Counter (`need_recovery`). With the
    patch a ready record is taken at once (the `get` is run up to its first wait;
    only a wait goes through `asyncio.wait_for`), and `need_recovery` gives the same
    answer without the Counter.

11. Faust's livelock check (every 2.5 commit intervals) logs an error for each
    partition aiokafka has not fetched since the start, once the worker is
    `stream_processing_timeout` (5 minutes) old. Item 9 pauses the changelogs in
    aiokafka after recovery, so a changelog partition recovery never fetched (an
    empty table: a first start) drew an error 4 times a second under exactly-once
    (seen with a 5 s timeout: 2,656 errors in 45 s of an idle worker). The patch
    leaves partitions paused in aiokafka out of the check.

12. Under exactly-once a changelog ends in a transaction marker, not a record, so
    recovery, which waits for the offset before the end, never sees it arrive: Faust
    notices only after the changelog queue has been empty for two 5 s timeouts
    ("Aborted tx until highwater"), and every restart stood still for 10 s. The
    patch records, with each fetch, each partition's position and the last record
    it returned; a partition is read once its position is past the highwater and
    that record has been applied, checked after every fetch.

13. After a rebalance Faust keeps a transactional producer it already has for a
    partition that comes back to this worker, although another worker has used that
    transactional id since and fenced it: the worker's first write there then failed
    with ProducerFenced and the worker stopped (seen here: the survivor of a two-worker
    takeover died a second after taking the partitions over). The patch replaces the
    producers of newly assigned partitions with new ones before Faust begins their
    transactions: a new InitProducerId, which fences any older holder instead.
"""

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from faust.assignor.client_assignment import ClientMetadata
from faust.assignor.partition_assignor import PartitionAssignor
from faust.tables import recovery
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer as BaseConsumer
from faust.transport.consumer import TransactionManager
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Producer
from mode import Service
from mode.services import WaitResults

_INSTALLED = False
log = logging.getLogger("waiver")


async def _seek_to_committed(self: AIOKafkaConsumerThread) -> Any:
    changelogs = set(self.app.tables.changelog_topics)
    reset = self.app.conf.consumer_auto_offset_reset
    return await self.call_thread(_seek_stream_partitions, self._ensure_consumer(), changelogs,
                                  reset)


async def _seek_stream_partitions(consumer: Any, changelogs: set[str], reset: str) -> Any:
    committed = await consumer.seek_to_committed()
    uncommitted = []
    for tp, offset in committed.items():
        if tp.topic in changelogs or (offset is not None and offset > 0):
            continue  # sought by aiokafka; changelog positions are the recovery's
        if offset == 0:
            consumer.seek(tp, 0)
        else:
            uncommitted.append(tp)
    # All at once: each call waits for a turn of aiokafka's fetcher, up to the fetch
    # wait (100 ms), and one call per partition delayed every start by 5 s.
    if uncommitted and reset == "earliest":
        await consumer.seek_to_beginning(*uncommitted)
    elif uncommitted and reset == "latest":
        await consumer.seek_to_end(*uncommitted)
    return committed


def _fetch_idle(consumer: Any) -> asyncio.Event:
    """Set while no `_getmany` of this consumer is in flight."""
    idle = consumer.__dict__.get("_waiver_fetch_idle")
    if idle is None:
        idle = consumer.__dict__["_waiver_fetch_idle"] = asyncio.Event()
        idle.set()
    return idle


def _tracked_getmany(method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        idle = _fetch_idle(self)
        idle.clear()
        try:
            records = await method(self, *args, **kwargs)
        finally:
            idle.set()
        _end_recovery_if_read(self.app)
        return records

    return wrapper


def _flow_stopped_first(method: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: Recovery, *args: Any, **kwargs: Any) -> None:
        consumer = self.app.consumer
        consumer.stop_flow()
        # The fetch in flight returns within its timeout (1 s); no new one starts
        # until the flow resumes (Consumer._wait_next_records).
        await _fetch_idle(consumer).wait()
        await method(self, *args, **kwargs)

    return wrapper


async def _highwaters(self: AIOKafkaConsumerThread, partitions: list[Any]) -> Any:
    # end_offsets honours the consumer's isolation level: the last stable offset
    # under read_committed, the high watermark otherwise.
    return await self._ensure_consumer().end_offsets(partitions)


FETCH_MAX_WAIT_MS = 1500  # Faust's value; Pipeline sets it from its settings


def _with_fetch_wait(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: AIOKafkaConsumerThread, *args: Any, **kwargs: Any) -> Any:
        consumer = method(self, *args, **kwargs)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer

    return wrapper


class Resumed:
    """A coroutine run up to its first wait, awaitable from there on."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Any, yielded: Any) -> None:
        self.coro, self.yielded = coro, yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # CancelledError included: the coroutine's to handle
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value


def _run_to_first_wait(coro: Any) -> tuple[bool, Any]:
    """(True, its result) if `coro` finishes without waiting, else (False, a Resumed
    to await for the rest)."""
    try:
        yielded = coro.send(None)
    except StopIteration as done:
        return True, done.value
    return False, Resumed(coro, yielded)


async def _wait_first_eager(self: Any, *coros: Any, timeout: Any = None) -> WaitResults:
    """`Service.wait_first` for the fetcher's (callback(message), suspend_flow.wait())."""
    if (len(coros) == 2 and asyncio.iscoroutine(coros[0]) and timeout is None
            and not (self.suspend_flow.is_set() or self._stopped.is_set()
                     or self._crashed.is_set())):
        first, other = coros
        finished, value = _run_to_first_wait(first)
        if finished:
            if asyncio.iscoroutine(other):
                other.close()  # never started
            return WaitResults([first], [value], False)
        coros = (value, other)
    return await Service.wait_first(self, *coros, timeout=timeout)


async def _eager_wait_for(awaitable: Any, timeout: float | None) -> Any:
    """`asyncio.wait_for` that returns at once when `awaitable`, a coroutine, finishes
    without waiting."""
    if asyncio.iscoroutine(awaitable):
        finished, value = _run_to_first_wait(awaitable)
        if finished:
            return value
        awaitable = value
    return await asyncio.wait_for(awaitable, timeout)


class _RecoveryAsyncio:
    """The `asyncio` module as faust.tables.recovery sees it: its `wait_for` eager."""

    wait_for = staticmethod(_eager_wait_for)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


def _need_recovery(self: Recovery) -> bool:
    """`Recovery.need_recovery`: any active partition with changes not yet read.

    A partition whose changelog ends in transaction markers (exactly-once) is read
    once the consumer's position is past its highwater and its last record fetched
    has been applied: the markers hold no change (item 12)."""
    offsets = self.active_offsets
    fetched = fetched_positions(self.app.consumer)
    behind = False
    for tp, highwater in self.active_highwaters.items():
        offset = offsets[tp]
        if highwater is None or offset is None or highwater - offset <= 0:
            continue
        position, last_record = fetched.get(tp, (None, -1))
        if position is not None and position > highwater and offset >= last_record:
            offsets[tp] = highwater  # what Faust's detect_aborted_tx does, 10 s later
        else:
            behind = True
    return behind


def fetched_positions(consumer: Any) -> dict[Any, tuple[int, int]]:
    """tp -> (the consumer's position, the offset of the last record it returned),
    as of its last fetch: one tuple, written at once by the consumer thread."""
    thread = getattr(consumer, "_thread", None)
    return thread.__dict__.setdefault("_waiver_fetched", {}) if thread is not None else {}


POSITIONS_EVERY = 0.05


def _recording_positions(method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: AIOKafkaConsumerThread, consumer: Any, active_partitions: Any,
                      *args: Any, **kwargs: Any) -> Any:
        records = await method(self, consumer, active_partitions, *args, **kwargs)
        subscription = consumer._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        if assignment is None or not active_partitions:
            return records
        fetched = self.__dict__.setdefault("_waiver_fetched", {})
        # The partitions that brought records, and every POSITIONS_EVERY seconds all of
        # them: a worker has some 80, and a look at each on every fetch, in the consumer
        # thread, took the GIL from the event loop.
        now = time.monotonic()
        if now - self.__dict__.get("_waiver_scanned", 0.0) >= POSITIONS_EVERY:
            self.__dict__["_waiver_scanned"] = now
            tps = active_partitions
        else:
            tps = records.keys()
        for tp in tps:
            state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
            if state is None or not state.has_valid_position:
                continue
            batch = records.get(tp)
            last = batch[-1].offset if batch else fetched.get(tp, (None, -1))[1]
            fetched[tp] = (state.position, last)
        return records

    return wrapper


def _end_recovery_if_read(app: Any) -> None:
    """After a fetch: end the recovery if every changelog partition is read. Faust
    checks only when a changelog record arrives, and a fetch that skips only markers
    brings none."""
    recovery = app.tables._recovery
    if recovery is not None and recovery.in_recovery and not recovery.need_recovery():
        recovery.flush_buffers()
        recovery._set_recovery_ended()
        recovery.signal_recovery_end.set()


def exit_misconfigured(message: str) -> None:
    log.critical(message)
    logging.shutdown()
    os._exit(78)  # EX_CONFIG


def _url_unchanged(method: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(method)
    def wrapper(self: PartitionAssignor, assignment: Any) -> None:
        try:
            method(self, assignment)
        except AssertionError:
            metadata = ClientMetadata.loads(self._decompress(assignment.user_data))
            if metadata.url == str(self._url):
                raise
            exit_misconfigured(
                f"Kafka returned this worker's previous assignment, made when its URL was "
                f"{metadata.url}; it is now {self._url}. A worker that keeps its "
                f"WAIVER_INSTANCE_ID must keep its URL (WAIVER_CANONICAL_URL, or its host "
                f"and WAIVER_WEB_PORT) across restarts.")

    return wrapper


async def _commit_transactions_together(self: Producer, tid_to_offset_map: Any, group_id: str,
                                       start_new_transaction: bool = True) -> None:
    """`Producer.commit_transactions`, its transactions ended concurrently."""

    async def commit_one(transactional_id: str, offsets: Any) -> None:
        async with self._trn_locks[transactional_id]:
            producer = self._transaction_producers.get(transactional_id)
            if producer is None:
                log.warning("commit invoked for unknown transaction %s", transactional_id)
                return
            await producer.send_offsets_to_transaction(offsets, group_id)
            await producer.commit_transaction()
            # Under the lock still: no write of the next transaction has started.
            committed = getattr(self.app, "on_transaction_committed", None)
            if committed is not None:
                committed(transactional_id)
            if start_new_transaction:
                await producer.begin_transaction()
        thread = getattr(self.app.consumer, "_thread", None)
        if thread is not None:  # AIOKafkaConsumerThread.verify_event_path reads it
            now = time.monotonic()
            thread.tp_last_committed_at.update({tp: now for tp in offsets})

    # gather: the first error propagates as in the serial original (ProducerFenced makes
    # Faust crash the worker); the other partitions' commits are independent of it.
    await asyncio.gather(*(commit_one(tid, offsets)
                           for tid, offsets in tid_to_offset_map.items()))


def _tracking_sent_topics(method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: AIOKafkaClient, topic: str) -> Any:
        if topic not in self._topics:
            self.add_topic(topic)  # a set add (and a refresh, if the topic is new)
        return await method(self, topic)

    return wrapper


def _changelogs_in_fetcher(method: Callable[..., None], pause: bool) -> Callable[..., None]:
    @functools.wraps(method)
    def wrapper(self: Any, tps: Any) -> None:
        tps = set(tps)
        method(self, tps)
        changelogs = {tp for tp in tps if self._is_changelog_tp(tp)}
        thread = getattr(self, "_thread", None)
        inner = getattr(thread, "_consumer", None)
        if changelogs and inner is not None:
            # aiokafka's consumer lives on the consumer thread's loop.
            thread.thread_loop.call_soon_threadsafe(_set_paused, inner, changelogs, pause)

    return wrapper


def _set_paused(consumer: Any, tps: set[Any], pause: bool) -> None:
    """Pause or resume these partitions in an aiokafka consumer, those it is assigned."""
    assigned = consumer.assignment()
    mine = [TopicPartition(tp.topic, tp.partition) for tp in tps if tp in assigned]
    (consumer.pause if pause else consumer.resume)(*mine)


def _paused_not_verified(method: Callable[..., None]) -> Callable[..., None]:
    """AIOKafkaConsumerThread.verify_event_path, but not for a partition paused in
    aiokafka (item 9): it is not fetched on purpose."""
    @functools.wraps(method)
    def wrapper(self: AIOKafkaConsumerThread, now: float, tp: Any) -> None:
        subscription = self._ensure_consumer()._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        state = assignment.state_value(TopicPartition(tp.topic, tp.partition)) \
            if assignment is not None else None
        if state is not None and state.paused:
            return None
        return method(self, now, tp)

    return wrapper


def _fresh_producers_for_new_partitions(method: Callable[..., Awaitable[None]]
                                        ) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: TransactionManager, assigned: Any, revoked: Any,
                      newly_assigned: Any) -> None:
        # Nothing of this worker's current generation runs on a partition it did not
        # hold: a producer already there for its transactional id is a stale one.
        for transactional_id in sorted(self._tps_to_transactional_ids(set(newly_assigned))):
            await self.producer.stop_transaction(transactional_id)
        await method(self, assigned, revoked, newly_assigned)

    return wrapper


def install(fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    global _INSTALLED, FETCH_MAX_WAIT_MS
    FETCH_MAX_WAIT_MS = fetch_max_wait_ms
    if _INSTALLED:
        return
    Consumer._getmany = _tracked_getmany(Consumer._getmany)
    BaseConsumer.wait_first = _wait_first_eager  # only _drain_messages calls it there
    PartitionAssignor.on_assignment = _url_unchanged(PartitionAssignor.on_assignment)
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed
    AIOKafkaConsumerThread._create_worker_consumer = _with_fetch_wait(
        AIOKafkaConsumerThread._create_worker_consumer)
    AIOKafkaConsumerThread._highwaters = _highwaters
    Producer.commit_transactions = _commit_transactions_together
    AIOKafkaClient._wait_on_metadata = _tracking_sent_topics(AIOKafkaClient._wait_on_metadata)
    Recovery.on_recovery_completed = _flow_stopped_first(Recovery.on_recovery_completed)
    Recovery._resume_streams = _flow_stopped_first(Recovery._resume_streams)
    BaseConsumer.pause_partitions = _changelogs_in_fetcher(BaseConsumer.pause_partitions,
                                                           pause=True)
    BaseConsumer.resume_partitions = _changelogs_in_fetcher(BaseConsumer.resume_partitions,
                                                            pause=False)
    recovery.asyncio = _RecoveryAsyncio()  # type: ignore[assignment]
    Recovery.need_recovery = _need_recovery  # type: ignore[method-assign]
    AIOKafkaConsumerThread._fetch_records = _recording_positions(
        AIOKafkaConsumerThread._fetch_records)
    TransactionManager.on_rebalance = _fresh_producers_for_new_partitions(
        TransactionManager.on_rebalance)
    AIOKafkaConsumerThread.verify_event_path = _paused_not_verified(
        AIOKafkaConsumerThread.verify_event_path)
    _INSTALLED = True
