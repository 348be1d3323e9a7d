"""The Faust application object: topics, the customer table, the agents.

`Pipeline(settings)` builds everything a worker runs; `streams.agents` holds
the agents themselves, one module per concern.
"""

import logging
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from streams.settings import Settings
from streams.topics import TopicNames

log = logging.getLogger("waiver")


def utcnow() -> datetime:
    return datetime.now(UTC)


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for a customer key."""
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.program = settings.program()
        self.names = TopicNames(settings.topic_prefix)
        self.app = faust.App(
            settings.application_id,
            broker=settings.broker,
            store="memory://",
            processing_guarantee=settings.processing_guarantee,
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            broker_session_timeout=settings.session_timeout,
            broker_heartbeat_interval=max(1.0, settings.session_timeout / 4),
            consumer_auto_offset_reset="earliest",
            key_serializer="raw",
            value_serializer="json",
            web_host=settings.web_host,
            web_port=settings.web_port,
            web_bind=settings.web_host,
            datadir=settings.data_dir,
            producer_acks=-1,
        )
        n = settings.partitions
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
               "value_serializer": "raw", "partitions": n}
        names = self.names
        # One agent consumes every per-customer stream so that all changes to a
        # customer's state happen in order, in one place, on one partition.
        self.customer_inputs = self.app.topic(
            names.cancellations, names.applications, names.round_triggers, names.rerouted, **raw
        )
        self.deadlines = self.app.topic(names.deadlines, **raw)
        self.round_triggers = self.app.topic(names.round_triggers, internal=True, **raw)
        self.rerouted = self.app.topic(names.rerouted, internal=True, **raw)
        self.outputs = {
            name: self.app.topic(name, partitions=n, key_serializer="raw",
                                 value_serializer="raw")
            for name in names.outputs()
        }
        self.customers = self.app.Table("customers", default=None, partitions=n)
        # Per partition (key: str(partition)), the rounds whose fan-out completed there:
        # a redelivered or republished round is then a no-op.
        self.rounds_done = self.app.Table("rounds-done", default=None, partitions=n)

        from streams.agents import customers, deadlines

        customers.attach(self)
        deadlines.attach(self)

    def partition_for(self, customer_id: str) -> int:
        return partition_for(customer_id, self.settings.partitions)

    async def publish(self, topic: str, key: str | None, value: Any,
                      partition: int | None = None) -> Any:
        """Queue one JSON record; returns a future resolved when the broker acks it."""
        body = value if isinstance(value, bytes) else value.model_dump_json().encode()
        return await self.outputs[topic].send(
            key=key.encode() if key is not None else None, value=body, partition=partition
        )
