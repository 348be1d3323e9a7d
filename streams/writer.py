"""Everything one input event writes: output records and table changes.

Exactly-once (Apache Kafka): every record goes into the Kafka transaction that
Faust commits the event's offset with, and no commit can fall while an event is
half-written. faust-streaming's own routing does neither: it picks a
transaction by each record's *destination* partition (outputs to unsubscribed
topics go out outside any transaction), and its commit timer runs between two
sends of one event. So this module sends through the transactional producer of
the event's *source* partition, holding that producer's lock from the first
write to the ack.

At-least-once (any broker): outputs are acknowledged by the broker before the
table changes that record them, so a crash repeats an output, never loses one.
"""

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError

if TYPE_CHECKING:
    from faust.types import EventT, TableT

    from streams.app import Pipeline


class TransactionUnavailable(KafkaError):
    """The event's transaction is gone (its partition was revoked): reprocess later."""


class EventWriter:
    def __init__(self, pipeline: "Pipeline", event: "EventT") -> None:
        self.app = pipeline.app
        self.event = event
        self.exactly_once = pipeline.settings.processing_guarantee == "exactly_once"
        self._futures: list[Any] = []
        self._table_writes: list[tuple[TableT, str, Any]] = []
        self._lock: asyncio.Lock | None = None
        self._txn: Any = None

    def _transactional_id(self) -> str:
        # The id Faust commits this event's offset under (TransactionManager.commit).
        msg = self.event.message
        group = self.app.assignor.group_for_topic(msg.topic)
        return f"{self.app.conf.id}-{group}-{msg.partition}"

    async def __aenter__(self) -> "EventWriter":
        if self.exactly_once:
            producer: Any = self.app.producer
            tid = self._transactional_id()
            self._lock = producer._trn_locks.get(tid)
            self._txn = producer._transaction_producers.get(tid)
            if self._lock is None or self._txn is None:
                raise TransactionUnavailable(f"no open transaction {tid}")
            await self._lock.acquire()
        return self

    async def send(self, topic: str, key: bytes | None, value: bytes,
                   partition: int | None = None, headers: list[tuple[str, bytes]] | None = None
                   ) -> None:
        if self.exactly_once:
            future = await self._txn.send(topic, value, key=key, partition=partition,
                                          headers=headers)
        else:
            future = await self.app.producer.send(topic, key, value, partition, None, headers)
        self._futures.append(future)

    def put(self, table: "TableT", key: str, value: Any) -> None:
        """Set `table[key] = value` once this event's outputs are written."""
        self._table_writes.append((table, key, value))

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if exc_type is not None:
                return
            if self.exactly_once:
                # One transaction holds it all; its commit flushes and checks every send.
                serializers = self.app.serializers
                for table, key, value in self._table_writes:
                    table.data[key] = value  # the store only: the changelog record follows
                    # Encoded exactly as Faust encodes changelog records, for its recovery.
                    raw_key = serializers.dumps_key(table.key_type, key,
                                                    serializer=table.key_serializer)
                    raw_value = serializers.dumps_value(table.value_type, value,
                                                        serializer=table.value_serializer)
                    await self.send(table.changelog_topic.get_topic_name(), raw_key, raw_value,
                                    partition=self.event.message.partition)
            else:
                await asyncio.gather(*self._futures)
                for table, key, value in self._table_writes:
                    table[key] = value  # Faust's changelog, flushed before its commit
            # Acked under the lock: the next commit takes this offset with these writes.
            self.event.ack()
        finally:
            if self._lock is not None:
                self._lock.release()
