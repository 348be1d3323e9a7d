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

Table changes are staged in the writer until the end: later events of the batch
read them through `get` and `items`.
"""

import asyncio
import logging
import os
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from aiokafka.errors import KafkaError

if TYPE_CHECKING:
    from faust.types import EventT, TableT

    from streams.app import Pipeline


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


def store_dict(table: "TableT") -> dict[Any, Any]:
    """The memory store's own dict: its mapping interface costs a few µs per item."""
    store = table.data
    return getattr(store, "data", store)


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
        self._futures: list[Any] = []  # one per record batch sent
        # (topic, partition) -> records not yet handed to the producer. From BATCH_MIN
        # records on, they go into an aiokafka BatchBuilder instead of a list.
        self._records: dict[tuple[str, int], list[tuple[bytes | None, bytes, Any]]] = {}
        self._batches: dict[tuple[str, int], Any] = {}
        # (table name, key) -> (table, value): the batch's changes, and the current
        # event's until it is done (a failed event's changes are dropped).
        self._staged: dict[tuple[str, str], tuple[TableT, Any]] = {}
        self._current: dict[tuple[str, str], tuple[TableT, Any]] = {}
        self._done: list[EventT] = []
        self._lock: asyncio.Lock | None = None
        self._producer: Any = None  # aiokafka's producer: Faust's, or the transaction's
        self._partitions = pipeline.settings.partitions
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
        customer topics (saves a murmur2 hash)."""
        if keyed_here and partition is None and self._same_partitioning(topic):
            partition = self.partition
        await self._append(topic, key, value, partition, headers)

    def _same_partitioning(self, topic: str) -> bool:
        size = self._topic_sizes.get(topic)
        if size is None:
            known = self._producer.client.cluster.partitions_for_topic(topic)
            if not known:
                return False  # no metadata yet: the client partitions this one
            size = self._topic_sizes[topic] = len(known)
        return size == self._partitions

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
            self._batches[tp] = producer.create_batch()
            for record in self._records.pop(tp):
                await self._add_to_batch(tp, *record)

    async def _add_to_batch(self, tp: tuple[str, int], key: bytes | None, value: bytes,
                            headers: list[tuple[str, bytes]] | None) -> None:
        if self._batches[tp].append(timestamp=None, key=key, value=value,
                                    headers=headers or []) is None:
            # Full (producer_batch_bytes): send it, start the next. An empty batch
            # takes any record, however large.
            await self._send_batch(tp)
            self._batches[tp] = self._producer.create_batch()
            self._batches[tp].append(timestamp=None, key=key, value=value, headers=headers or [])

    async def _send_batch(self, tp: tuple[str, int]) -> None:
        batch = self._batches.pop(tp)
        self._futures.append(await self._producer.send_batch(batch, tp[0], partition=tp[1]))

    async def _flush(self) -> None:
        """Hand everything appended so far to the producer."""
        for (topic, partition), records in self._records.items():
            for key, value, headers in records:
                self._futures.append(await self._producer.send(
                    topic, value, key=key, partition=partition, headers=headers))
        self._records.clear()
        for tp in list(self._batches):
            await self._send_batch(tp)

    def get(self, table: "TableT", key: str) -> Any:
        """`table.get(key)`, as this batch has changed it so far."""
        for layer in (self._current, self._staged):
            entry = layer.get((table.name, key))
            if entry is not None:
                return entry[1]
        return table.get(key)

    def items(self, table: "TableT", keys: "Iterable[str] | None" = None
              ) -> Iterator[tuple[str, Any]]:
        """`table.items()`, as this batch has changed it so far. With `keys`, only those
        of the table's keys (and every key the batch changed)."""
        changed = {key: value for (name, key), (_, value) in self._staged.items()
                   if name == table.name}
        changed.update((key, value) for (name, key), (_, value) in self._current.items()
                       if name == table.name)
        store = store_dict(table)
        pairs = store.items() if keys is None else ((key, store.get(key)) for key in keys)
        for key, value in pairs:
            yield key, changed.pop(key, value)
        yield from changed.items()

    def put(self, table: "TableT", key: str, value: Any) -> None:
        """Set `table[key] = value` once the batch's outputs are written."""
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
            # Later batches read these changes from the tables from now on.
            for (_, key), (table, value) in self._staged.items():
                table.data[key] = value
            if self.exactly_once:
                await self._write_changelog()
                # Acked under the lock: the next commit takes these offsets with these
                # writes.
                for event in self._done:
                    event.ack()
            else:
                await self._write_in_background()
        finally:
            if self._lock is not None:
                self._lock.release()

    async def _write_changelog(self) -> None:
        """The staged table changes to their changelogs."""
        serializers = self.app.serializers
        for (_, key), (table, value) in self._staged.items():
            # Encoded exactly as Faust encodes changelog records, for its recovery.
            raw_key = serializers.dumps_key(table.key_type, key,
                                            serializer=table.key_serializer)
            raw_value = serializers.dumps_value(table.value_type, value,
                                                serializer=table.value_serializer)
            await self._append(table.changelog_topic.get_topic_name(), raw_key, raw_value,
                               self.partition, None)
        await self._flush()

    async def _write_in_background(self) -> None:
        """The changelog records after the outputs' acks, then the events' acks."""
        for event in self._done:
            event.message.incref()  # take_events' ack is then not the last one
        # Chained by partition number: every writer of a customer partition (all its
        # topics, of any agent) after the one before it.
        await self._pending.make_room(self.partition)
        previous = self._pending.last(self.partition)
        self._pending.add(self.partition, asyncio.create_task(self._complete(previous)))

    async def _complete(self, previous: "asyncio.Task[None] | None") -> None:
        try:
            await asyncio.gather(*self._futures)
            if previous is not None:
                await previous  # changelogs and acks in the order of the batches
            self._futures.clear()
            await self._write_changelog()
            # The state is acknowledged too before the events are. Faust flushes the
            # producer before a commit, but its flush does not fail on a failed batch:
            # the offsets would be committed without the state that records them.
            await asyncio.gather(*self._futures)
        except asyncio.CancelledError:
            return  # stopping: the events are not acked, and come again
        except BaseException as exc:
            # The broker refused a write after the client's own retries (or worse): the
            # events can be neither acked nor retried here. Restart from the last commit.
            stop_now(exc)
        for event in self._done:
            event.ack()
