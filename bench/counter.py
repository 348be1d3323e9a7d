"""A counting consumer: records per topic, bytes, and when the first and last arrived.

It keeps no records in memory (an optional `on_record` callback sees each one), so it
can count millions. Arrival times are `time.monotonic()` in this process, taken when a
fetched batch is handed over; CLOCK_MONOTONIC is system-wide on Linux, so they compare
with times taken in other processes on the same machine.
"""

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


class RecordCounter:
    def __init__(self, bootstrap: str, topics: list[str], *, from_end: bool = False,
                 isolation_level: str = "read_uncommitted",
                 on_record: Callable[[str, Any, float], None] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.from_end = from_end
        self.isolation_level = isolation_level
        self.on_record = on_record
        self.counts: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.last_change = time.monotonic()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 30.0) -> "RecordCounter":
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level=self.isolation_level,
            fetch_max_wait_ms=5, fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024, metadata_max_age_ms=1000,
            request_timeout_ms=30000)
        await consumer.start()
        self._consumer = consumer
        deadline = time.monotonic() + timeout
        tps: list[TopicPartition] = []
        for topic in self.topics:
            while True:
                await consumer.topics()  # refreshes the metadata
                parts = consumer.partitions_for_topic(topic)
                if parts:
                    tps += [TopicPartition(topic, p) for p in sorted(parts)]
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {topic} has no partitions after {timeout:.0f}s")
                await asyncio.sleep(0.2)
        consumer.assign(tps)
        if self.from_end:
            await consumer.seek_to_end(*tps)
        else:
            await consumer.seek_to_beginning(*tps)
        for tp in tps:  # resolve the positions now, not at the first fetch
            await consumer.position(tp)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=20000)
            if not batches:
                continue
            now = time.monotonic()
            for tp, messages in batches.items():
                if not messages:
                    continue
                topic = tp.topic
                self.counts[topic] += len(messages)
                self.bytes[topic] += sum(len(m.value or b"") for m in messages)
                self.first.setdefault(topic, now)
                self.last[topic] = now
                if self.on_record is not None:
                    for m in messages:
                        self.on_record(topic, m, now)
            self.last_change = now

    def count(self, *topics: str) -> int:
        return sum(self.counts[t] for t in topics)

    def last_arrival(self, *topics: str) -> float | None:
        times = [self.last[t] for t in topics if t in self.last]
        return max(times) if times else None

    def first_arrival(self, *topics: str) -> float | None:
        times = [self.first[t] for t in topics if t in self.first]
        return min(times) if times else None

    def average_size(self, *topics: str) -> float:
        n = self.count(*topics)
        return sum(self.bytes[t] for t in topics) / n if n else 0.0

    async def wait_for(self, condition: Callable[[], bool], *, timeout: float, stall: float,
                       what: str, alive: Callable[[], bool] | None = None) -> None:
        """Wait for `condition`; give up after `timeout`, or after `stall` seconds without
        a new record, or when `alive()` turns false."""
        started = time.monotonic()
        self.last_change = max(self.last_change, started)
        report = started + 30
        while not condition():
            if self._task is not None and self._task.done():
                self._task.result()  # re-raise the consumer's failure
            now = time.monotonic()
            state = f"counts so far: {dict(self.counts)}"
            if now - started > timeout:
                raise TimeoutError(f"{what}: not done after {timeout:.0f}s; {state}")
            if now - self.last_change > stall:
                raise TimeoutError(f"{what}: nothing new for {stall:.0f}s; {state}")
            if alive is not None and not alive():
                raise RuntimeError(f"{what}: the process under test died; {state}")
            if now > report:  # a sign of life on long runs
                report = now + 30
                print(f"  ... {what}: {now - started:.0f}s, {state}", flush=True)
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop consuming; safe to call twice."""
        task, consumer = self._task, self._consumer
        self._task = self._consumer = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if consumer is not None:
            await consumer.stop()
