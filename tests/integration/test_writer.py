"""The batch writer on a real broker: what it sends arrives once, in order, per partition,
whether it went through producer.send() (a few records) or as aiokafka batches (many, and
more than one batch's worth), and the events are acked only after that."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import Pipeline
from streams.settings import Settings
from streams.writer import BATCH_MIN, EventWriter
from tests.conftest import worker_settings

pytestmark = pytest.mark.integration


class Message(SimpleNamespace):
    refcount = 1  # the stream's ack (take_events) is to come

    def incref(self) -> None:
        self.refcount += 1


class Event(SimpleNamespace):
    acked = False

    def ack(self) -> None:
        self.message.refcount -= 1
        self.acked = self.message.refcount == 0


@contextlib.asynccontextmanager
async def started(settings: Settings, topic: str) -> AsyncIterator[Pipeline]:
    """A pipeline with its producer started, and `topic` created."""
    pipeline = Pipeline(settings)
    producer = pipeline.app.producer
    await producer.start()
    try:
        await producer.create_topic(topic, partitions=settings.partitions, replication=1)
        yield pipeline
    finally:
        # A record stuck in the producer would make its flush wait for ever.
        await asyncio.wait_for(producer.stop(), 10)


@pytest.mark.asyncio(loop_scope="session")
async def test_records_arrive_once_and_in_order(broker: str, tmp_path: Path) -> None:
    # Small producer batches, so the many-record partition fills more than one.
    settings = worker_settings(broker, tmp_path, processing_guarantee="at_least_once",
                               producer_batch_bytes=4096)
    topic = f"{settings.topic_prefix}writer-out"
    async with started(settings, topic) as pipeline:
        many, few = BATCH_MIN * 4, 3  # ~200-byte records: about 20 to a 4 KiB batch
        events = [Event(message=Message(partition=0, offset=i, topic="in"))
                  for i in range(2)]
        async with EventWriter(pipeline, events) as w:
            for i in range(many):
                await w.send(topic, b"k", f"{i:0200d}".encode(), partition=0)
            for i in range(few):
                await w.send(topic, b"k", f"few-{i}".encode(), partition=1)
            for event in events:
                w.done(event)
            assert not any(event.acked for event in events)
        # Written in the background: the stream's ack is not the last one.
        for event in events:
            event.ack()
        assert not any(event.acked for event in events)
        await pipeline.pending_writes.drain()
        assert all(event.acked for event in events)

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap,
                                group_id=f"writer-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in (0, 1)]
        consumer.assign(tps)
        got: dict[int, list[bytes]] = {0: [], 1: []}
        while len(got[0]) < many or len(got[1]) < few:
            batch = await consumer.getmany(*tps, timeout_ms=5000)
            assert batch, f"timed out with {len(got[0])} + {len(got[1])} records"
            for tp, records in batch.items():
                got[tp.partition].extend(record.value for record in records)
    finally:
        await consumer.stop()
    assert got[0] == [f"{i:0200d}".encode() for i in range(many)]
    assert got[1] == [f"few-{i}".encode() for i in range(few)]


@pytest.mark.asyncio(loop_scope="session")
async def test_topics_written_stay_in_the_producers_metadata(broker: str, tmp_path: Path) -> None:
    # aiokafka refreshes metadata only for the topics its client tracks; a topic known
    # from an earlier full refresh used to drop out of the next one, and its records
    # waited in the producer for ever (faust_fixes, item 8).
    settings = worker_settings(broker, tmp_path, processing_guarantee="at_least_once")
    topic = f"{settings.topic_prefix}writer-tracked"
    async with started(settings, topic) as pipeline:
        client = pipeline.app.producer._ensure_producer().client
        client.set_topics([])
        await client.force_metadata_update()  # a full refresh: every topic is known
        assert client.cluster.partitions_for_topic(topic)
        event = Event(message=Message(partition=0, offset=0, topic="in"))
        async with EventWriter(pipeline, [event]) as w:
            await w.send(topic, b"k", b"v", partition=0)
            w.done(event)
        client.add_topic(f"{settings.topic_prefix}another")  # now only tracked topics
        await client.force_metadata_update()
        assert client.cluster.leader_for_partition(TopicPartition(topic, 0)) is not None
        await asyncio.wait_for(pipeline.pending_writes.drain(), 10)
        event.ack()  # the stream's
        assert event.acked
