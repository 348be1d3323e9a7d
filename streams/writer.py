"""Everything a batch of input events writes: output records and table changes.

A writer covers consecutive events of one source partition: the agent hands it a
batch (up to `max_batch` events, waiting at most `batch_wait_ms`). Under
at-least-once a busy stream then pays one broker round trip per batch instead of one
per event; under exactly-once, one lock and one transaction lookup per batch.

Exactly-once (Apache Kafka): every record goes into the Kafka transaction that
Faust commits the events' offsets with, and no commit can fall while a batch is
half-written. faust-streaming's own routing does neither: it picks a
transaction by each record's *destination* partition (outputs to unsubscribed
topics go out outside any transaction), and its commit timer runs between two
sends of one event. So this module sends through the transactional producer of
the *source* partition, holding that producer's lock from the first write to
the acks.

At-least-once (any broker): the batch's outputs are acknowledged by the broker
before the table changes that record them are written to the changelog, and those
before the events are acked, so a crash repeats an output, never loses one or its
state. That wait (two broker round trips) runs in the background while the agent
goes on with the next batch, whose outputs are then already on their way; the
table in memory changes at once, so the next batch reads its predecessor's
changes. Each such write finishes after the one before it on its partition, so
changelogs and acks stay in order; a partition with 4 unfinished writes makes the
agent wait.

Table changes are kept in the writer until the end: later events of the batch read
them through `get` and `items`. At the end they are staged in the table's store
(streams/state_store.py), where later batches read them, and written to its local
backend only once Kafka holds them for good: after the transaction's commit
(`Committer`), or after the changelog's acks.
"""

import asyncio
import logging
import os
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from aiokafka.errors import KafkaError

if TYPE_CHECKING:
    from faust.types import EventT, TableT

    from streams.app import Pipeline
    from streams.state_store import PartitionedStore, Stage


# Records for one partition from which a writer sends them as one aiokafka batch
# (send_batch): appending to a batch costs a few µs, producer.send() ~20 µs and a
# future per record. Fewer go through producer.send(), which lets the records of
# consecutive small writers share a batch (a batch of send_batch is never shared,
# and the next one waits until it has left).
BATCH_MIN = 64


log = logging.getLogger("waiver")


def stop_now(exc: BaseException) -> NoReturn:
    """Exit at once, without the orderly stop that would commit acked offsets."""
    log.critical("stopping the worker: a write failed after retries (%s: %s)",
                 type(exc).__name__, exc)
    logging.shutdown()
    os._exit(70)


class PendingWrites:
    """At-least-once writes whose acks are still awaited, per partition in order: up to
    `depth` of them, each finishing after its predecessor."""

    def __init__(self, depth: int = 4) -> None:
        self.depth = depth
        self._queues: dict[Hashable, deque[asyncio.Task[None]]] = {}

    def last(self, key: Hashable) -> "asyncio.Task[None] | None":
        queue = self._queues.get(key)
        return queue[-1] if queue else None

    async def make_room(self, key: Hashable) -> None:
        """Wait until fewer than `depth` writes of `key` are unfinished."""
        queue = self._queues.get(key)
        while queue and len(queue) >= self.depth:
            await asyncio.wait([queue[0]])

    def add(self, key: Hashable, task: "asyncio.Task[None]") -> None:
        queue = self._queues.setdefault(key, deque())
        queue.append(task)
        task.add_done_callback(queue.remove)

    async def wait(self, key: Hashable) -> None:
        """Wait for the writes of `key` in flight."""
        await asyncio.gather(*self._queues.get(key, ()), return_exceptions=True)

    async def drain(self) -> None:
        """Wait for every write in flight (an agent stopping)."""
        tasks = [task for queue in self._queues.values() for task in queue]
        await asyncio.gather(*tasks, return_exceptions=True)


class TransactionUnavailable(KafkaError):
    """The events' transaction is gone (their partition was revoked): reprocess later."""


# Bytes a record batch adds around one record, and per header, at most (varints and
# fixed fields of the v2 format): a record this much under the producer's request
# limit fits in a request of its own.
RECORD_OVERHEAD = 128


class RecordTooLarge(ValueError):
    """A record larger than the worker may write: the producer would refuse it, or
    the broker would, for every retry and every restart. The event that asked for it
    goes to the dead-letter topic instead."""


def record_size(key: bytes | None, value: bytes | None,
                headers: "list[tuple[str, bytes]] | None" = None) -> int:
    return (len(key or b"") + len(value or b"") + RECORD_OVERHEAD
            + sum(len(k) + len(v) + 8 for k, v in headers or ()))


def store_of(table: "TableT") -> "PartitionedStore":
    return table.data  # type: ignore[return-value]


class Committer:
    """Under exactly-once, the stages each open transaction holds: written to their
    stores' backends when the transaction commits (faust_fixes: the commit calls
    `committed`). A transaction that never commits (its producer fenced, the worker
    killed) leaves its stages unwritten, as Kafka leaves its records invisible."""

    def __init__(self) -> None:
        self._open: dict[str, list[tuple[Stage, list[Sent]]]] = {}

    def add(self, transactional_id: str, stage: "Stage", sent: "list[Sent]") -> None:
        self._open.setdefault(transactional_id, []).append((stage, sent))

    def committed(self, transactional_id: str) -> None:
        for stage, sent in self._open.pop(transactional_id, ()):
            stage.commit(last_offset(sent))


# A record batch handed to the producer: its future (the RecordMetadata of its first
# record) and how many records it holds.
Sent = tuple["asyncio.Future[Any]", int]


def last_offset(sent: "list[Sent]") -> int | None:
    """The offset of the last record of these acknowledged batches."""
    offsets = [future.result().offset + count - 1 for future, count in sent
               if future.done() and not future.cancelled() and future.exception() is None]
    return max(offsets, default=None)


def batch_key(app: Any, event: "EventT") -> tuple[str, int]:
    """Events with the same key may share one writer: same transaction, same partition."""
    msg = event.message
    return app.assignor.group_for_topic(msg.topic), msg.partition


class EventWriter:
    def __init__(self, pipeline: "Pipeline", events: "Sequence[EventT]") -> None:
        self.app = pipeline.app
        self.events = events
        self.partition = events[0].message.partition
        self.exactly_once = pipeline.settings.processing_guarantee == "exactly_once"
        self._committer = pipeline.committer
        self._sent: dict[tuple[str, int], list[Sent]] = {}  # record batches sent, by tp
        self._counts: dict[tuple[str, int], int] = {}  # records in the batch being built
        # (topic, partition) -> records not yet handed to the producer. From BATCH_MIN
        # records on, they go into an aiokafka BatchBuilder instead of a list.
        self._records: dict[tuple[str, int], list[tuple[bytes | None, bytes, Any]]] = {}
        self._batches: dict[tuple[str, int], Any] = {}
        # (table name, key) -> (table, value): the batch's changes, and the current
        # event's until it is done (a failed event's changes are dropped).
        self._staged: dict[tuple[str, str], tuple[TableT, Any]] = {}
        # table name -> (table, its staged changes as changelog keys and values)
        self._changes: dict[str, tuple[TableT, dict[bytes, bytes | None]]] = {}
        self._current: dict[tuple[str, str], tuple[TableT, Any]] = {}
        self._done: list[EventT] = []
        self._lock: asyncio.Lock | None = None
        self._producer: Any = None  # aiokafka's producer: Faust's, or the transaction's
        self._partitions = pipeline.settings.partitions
        self._max_record = self.app.conf.producer_max_request_size
        self._topic_sizes = pipeline.topic_sizes
        self._pending = pipeline.pending_writes

    def _transactional_id(self) -> str:
        # The id Faust commits these events' offsets under (TransactionManager.commit).
        group, partition = batch_key(self.app, self.events[0])
        return f"{self.app.conf.id}-{group}-{partition}"

    async def __aenter__(self) -> "EventWriter":
        if self.exactly_once:
            producer: Any = self.app.producer
            tid = self._transactional_id()
            self._lock = producer._trn_locks.get(tid)
            self._producer = producer._transaction_producers.get(tid)
            if self._lock is None or self._producer is None:
                raise TransactionUnavailable(f"no open transaction {tid}")
            await self._lock.acquire()
        else:
            self._producer = self.app.producer._ensure_producer()
        return self

    async def send(self, topic: str, key: bytes | None, value: bytes,
                   partition: int | None = None, headers: list[tuple[str, bytes]] | None = None,
                   *, keyed_here: bool = False) -> None:
        """Send a record (with the batch's outputs, at the end). `keyed_here`: its key
        is a customer of the source partition, so Kafka's default partitioner would
        pick that partition number too, if the topic has as many partitions as the
        customer topics (saves a murmur2 hash). Raises RecordTooLarge for a record no
        request could carry."""
        self.check_size(key, value, headers)
        if keyed_here and partition is None and self._size(topic) == self._partitions:
            partition = self.partition
        elif partition is not None:
            if self._size(topic) is None:
                await self._producer.client._wait_on_metadata(topic)
            if partition >= (self._size(topic) or 0):
                # A topic created with fewer partitions (by hand, or auto-created by
                # a reader): the default partitioner then, rather than a failed send.
                partition = None
        await self._append(topic, key, value, partition, headers)

    def check_size(self, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None = None) -> None:
        size = record_size(key, value, headers)
        if size > self._max_record:
            raise RecordTooLarge(f"a record of {size:,} bytes exceeds the "
                                 f"{self._max_record:,} bytes the worker may write")

    def _size(self, topic: str) -> int | None:
        """The topic's partition count, None while the client has no metadata for it."""
        size = self._topic_sizes.get(topic)
        if size is None:
            known = self._producer.client.cluster.partitions_for_topic(topic)
            if not known:
                return None  # the client partitions this one
            size = self._topic_sizes[topic] = len(known)
        return size

    async def _append(self, topic: str, key: bytes | None, value: bytes, partition: int | None,
                      headers: list[tuple[str, bytes]] | None) -> None:
        producer = self._producer
        if partition is None:
            # What producer.send() does: the default partitioner, on fresh metadata.
            await producer.client._wait_on_metadata(topic)
            partition = producer._partition(topic, None, key, value, key, value)
        tp = (topic, partition)
        if tp in self._batches:
            await self._add_to_batch(tp, key, value, headers)
            return
        records = self._records.setdefault(tp, [])
        records.append((key, value, headers))
        if len(records) >= BATCH_MIN:
            self._new_batch(tp)
            for record in self._records.pop(tp):
                await self._add_to_batch(tp, *record)

    def _new_batch(self, tp: tuple[str, int]) -> None:
        self._batches[tp] = self._producer.create_batch()
        self._counts[tp] = 0

    async def _add_to_batch(self, tp: tuple[str, int], key: bytes | None, value: bytes,
                            headers: list[tuple[str, bytes]] | None) -> None:
        if self._batches[tp].append(timestamp=None, key=key, value=value,
                                    headers=headers or []) is None:
            # Full (producer_batch_bytes): send it, start the next. An empty batch
            # takes any record, however large.
            await self._send_batch(tp)
            self._new_batch(tp)
            self._batches[tp].append(timestamp=None, key=key, value=value, headers=headers or [])
        self._counts[tp] += 1

    async def _send_batch(self, tp: tuple[str, int]) -> None:
        batch = self._batches.pop(tp)
        future = await self._producer.send_batch(batch, tp[0], partition=tp[1])
        self._sent.setdefault(tp, []).append((future, self._counts.pop(tp)))

    async def _flush(self) -> None:
        """Hand everything appended so far to the producer."""
        for tp, records in self._records.items():
            sent = self._sent.setdefault(tp, [])
            for key, value, headers in records:
                sent.append((await self._producer.send(
                    tp[0], value, key=key, partition=tp[1], headers=headers), 1))
        self._records.clear()
        for tp in list(self._batches):
            await self._send_batch(tp)

    def _futures(self) -> list[Any]:
        return [future for sent in self._sent.values() for future, _ in sent]

    def get(self, table: "TableT", key: str) -> Any:
        """`table.get(key)` in the batch's partition, as this batch has changed it so
        far."""
        for layer in (self._current, self._staged):
            entry = layer.get((table.name, key))
            if entry is not None:
                return entry[1]
        return store_of(table).get_in(self.partition, key)

    def items(self, table: "TableT") -> Iterator[tuple[str, Any]]:
        """The (key, value) pairs of the table in the batch's partition, as this batch
        has changed them so far."""
        changed = {key: value for (name, key), (_, value) in self._staged.items()
                   if name == table.name}
        changed.update((key, value) for (name, key), (_, value) in self._current.items()
                       if name == table.name)
        for key, value in store_of(table).items_in(self.partition):
            yield key, changed.pop(key, value)
        yield from changed.items()

    def put(self, table: "TableT", key: str, value: Any) -> None:
        """Set `table[key] = value` once the batch's outputs are written. Raises
        RecordTooLarge for a value its changelog could not take."""
        if isinstance(value, bytes):
            self.check_size(key.encode(), value)
        self._current[(table.name, key)] = (table, value)

    def done(self, event: "EventT") -> None:
        """`event` is handled: keep its changes, ack it with the batch."""
        self._staged.update(self._current)
        self._current.clear()
        self._done.append(event)

    def discard(self) -> None:
        """Drop the current event's table changes (it failed; its outputs may stand)."""
        self._current.clear()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if exc_type is not None:
                return  # nothing acked: the events come again
            await self._flush()
            # Later batches read these changes from the stores from now on.
            stages = self._stage_tables()
            if self.exactly_once:
                await self._write_changelog()
                tid = self._transactional_id()
                for changelog, stage in stages:
                    self._committer.add(tid, stage, self._sent.get(changelog, []))
                # Acked under the lock: the next commit takes these offsets with these
                # writes.
                for event in self._done:
                    event.ack()
            else:
                await self._write_in_background(stages)
        finally:
            if self._lock is not None:
                self._lock.release()

    def _stage_tables(self) -> "list[tuple[tuple[str, int], Stage]]":
        """The batch's table changes, encoded as their changelog records, staged in
        their stores; (changelog partition, stage) per table."""
        by_table: dict[str, tuple[TableT, dict[bytes, bytes | None]]] = {}
        for (name, key), (table, value) in self._staged.items():
            store = store_of(table)
            changes = by_table.setdefault(name, (table, {}))[1]
            changes[store.encode_key(key)] = store.encode_value(value)
        self._changes = by_table
        return [((table.changelog_topic.get_topic_name(), self.partition),
                 store_of(table).stage(self.partition, changes))
                for table, changes in by_table.values()]

    async def _write_changelog(self) -> None:
        """The staged table changes to their changelogs, encoded as Faust encodes
        changelog records, for its recovery."""
        for table, changes in self._changes.values():
            topic = table.changelog_topic.get_topic_name()
            for raw_key, raw_value in changes.items():
                await self._append(topic, raw_key, raw_value, self.partition, None)
        await self._flush()

    async def _write_in_background(self, stages: "list[tuple[tuple[str, int], Stage]]"
                                   ) -> None:
        """The changelog records after the outputs' acks, then the events' acks."""
        for event in self._done:
            event.message.incref()  # take_events' ack is then not the last one
        # Chained by partition number: every writer of a customer partition (all its
        # topics, of any agent) after the one before it.
        await self._pending.make_room(self.partition)
        previous = self._pending.last(self.partition)
        self._pending.add(self.partition,
                          asyncio.create_task(self._complete(previous, stages)))

    async def _complete(self, previous: "asyncio.Task[None] | None",
                        stages: "list[tuple[tuple[str, int], Stage]]") -> None:
        try:
            await asyncio.gather(*self._futures())
            if previous is not None:
                await previous  # changelogs and acks in the order of the batches
            self._sent.clear()
            await self._write_changelog()
            # The state is acknowledged too before the events are. Faust flushes the
            # producer before a commit, but its flush does not fail on a failed batch:
            # the offsets would be committed without the state that records them.
            await asyncio.gather(*self._futures())
            for changelog, stage in stages:
                stage.commit(last_offset(self._sent.get(changelog, [])))
        except asyncio.CancelledError:
            return  # stopping: the events are not acked, and come again
        except BaseException as exc:
            # The broker refused a write after the client's own retries (or worse): the
            # events can be neither acked nor retried here. Restart from the last commit.
            stop_now(exc)
        for event in self._done:
            event.ack()
