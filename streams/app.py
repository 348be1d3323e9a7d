"""The Faust application object: topics, the customer table, the agents.

`Pipeline(settings)` builds everything a worker runs; `streams.agents` holds
the agents themselves, one module per concern.
"""

import asyncio
import gc
import logging
import signal
import sys
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from streams import faust_fixes, fetch_sessions, state_store, web
from streams.metrics import Metrics
from streams.rounds import RoundPool, available_cpus
from streams.settings import Settings
from streams.topics import TopicNames
from streams.writer import Committer, PendingWrites

log = logging.getLogger("waiver")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _dump_tasks() -> None:
    """Each asyncio task's await chain, innermost last."""
    for task in asyncio.all_tasks():
        lines = [f"task {task.get_name()}:"]
        coro: Any = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
            if frame is not None:
                lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} "
                             f"{frame.f_code.co_name}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        print("\n".join(lines), file=sys.stderr)


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for a customer key."""
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions


class App(faust.App):
    """Faust's app, told when a transaction of the worker commits (faust_fixes)."""

    def on_transaction_committed(self, transactional_id: str) -> None:
        for callback in self.transaction_listeners:
            callback(transactional_id)

    @property
    def transaction_listeners(self) -> list[Callable[[str], None]]:
        return self.__dict__.setdefault("_transaction_listeners", [])


def faust_app(settings: Settings, **overrides: Any) -> faust.App:
    """The worker's Faust app for these settings, with its patches installed (also the
    bench's Faust floor, bench/faust_relay.py: the same settings and patches)."""
    faust_fixes.install(settings.fetch_max_wait_ms)
    fetch_sessions.install()
    state_store.register()
    return App(
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
        canonical_url=settings.url,
        broker_credentials=settings.credentials(),
        producer_acks=-1,
        consumer_group_instance_id=settings.instance_id,
        # Bigger produce requests for a round's fan-out (Faust's default is 16 KiB).
        producer_max_batch_size=settings.producer_batch_bytes,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_compression_type=None if settings.compression == "none"
        else settings.compression,
        broker_commit_interval=settings.commit_interval,
        **overrides,
    )


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        if settings.processing_guarantee == "auto":
            raise ValueError("the processing guarantee is decided with the broker first "
                             "(streams.guarantee.resolve)")
        self.settings = settings
        self.program = settings.program()
        self.names = TopicNames(settings.topic_prefix)
        self.metrics = Metrics()
        self.recent_dead_letters: deque[dict[str, Any]] = deque(maxlen=20)
        # Partition counts of the topics written to, as the producer's metadata first
        # reports them (see EventWriter.send: keyed_here).
        self.topic_sizes: dict[str, int] = {}
        self.pending_writes = PendingWrites()  # at-least-once: see streams.writer
        processes = settings.round_processes
        self.rounds = RoundPool(self.program, available_cpus() if processes is None
                                else processes, settings.round_pool_min)
        self.app = faust_app(settings)
        self.committer = Committer()  # exactly-once: table stages by transaction
        self.app.transaction_listeners.append(self.committer.committed)
        n = settings.partitions
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
               "value_serializer": "raw", "partitions": n}
        names = self.names
        # One agent consumes every per-customer stream so that all changes to a
        # customer's state happen in order, in one place, on one partition.
        self.customer_inputs = self.app.topic(*names.customer_inputs(), **raw)
        self.deadlines = self.app.topic(names.deadlines, **raw)
        self.round_triggers = self.app.topic(names.round_triggers, internal=True, **raw)
        self.rerouted = self.app.topic(names.rerouted, internal=True, **raw)
        # Both tables in RocksDB (or memory), by partition, holding only what Kafka
        # has committed (streams/state_store.py).
        store = {"store": f"{state_store.SCHEME}://local",
                 "options": {"backend": settings.store}}
        # States as the JSON bytes of CustomerState: a quarter of the memory of a dict
        # tree, and no second encoding for the changelog.
        self.customers = self.app.Table("customers", default=None, partitions=n, key_type=str,
                                        value_type=bytes, **store)
        # Per partition (key: str(partition)), the rounds whose fan-out completed there:
        # a redelivered or republished round is then a no-op. Key "fired" in partition
        # 0: the rounds whose deadline came (streams/agents/schedule.py).
        self.rounds_done = self.app.Table("rounds-done", default=None, partitions=n,
                                          key_type=str, **store)

        @self.app.task
        async def freeze_startup_objects() -> None:
            # Runs once the tables are recovered. What is alive by then (modules, Faust's
            # services) lives as long as the worker: leave it out of the collector's
            # full passes, which paused the event loop for 50-80 ms (a latency spike).
            gc.collect()
            gc.freeze()

        @self.app.task
        async def dump_tasks_on_sigusr1() -> None:
            # `kill -USR1 <pid>` prints every asyncio task's stack: for a stuck worker.
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, self._dump_state)

        from streams.agents import customers, deadlines, schedule

        customers.attach(self)
        deadlines.attach(self)
        schedule.attach(self)
        web.attach(self)
        self.metrics.attach_live(self)

    def _dump_state(self) -> None:
        print("topic groups:", dict(self.app.assignor._topic_groups), file=sys.stderr)
        consumer: Any = self.app.consumer
        print("unacked:", len(consumer._unacked_messages), "generation:",
              self.app.consumer_generation_id, "flow active:",
              self.app.flow_control.is_active(), file=sys.stderr)
        try:
            inner = consumer._thread._ensure_consumer()
            for tp in sorted(inner.assignment()):
                if tp.topic == self.names.round_triggers:
                    print(f"  {tp.topic}[{tp.partition}]: paused {tp in inner.paused()} "
                          f"highwater {inner.highwater(tp)} last stable "
                          f"{inner.last_stable_offset(tp)}", file=sys.stderr)
        except Exception as exc:  # a debugging aid must never break the worker
            print("consumer state unavailable:", exc, file=sys.stderr)
        _dump_tasks()

    def owned_partitions(self) -> set[int]:
        """The customer partitions this worker processes now (its active assignment)."""
        return {tp.partition for tp in self.app.consumer.assignment()
                if tp.topic == self.names.round_triggers}

    def partition_for(self, customer_id: str) -> int:
        return partition_for(customer_id, self.settings.partitions)
