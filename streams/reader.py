"""Read the output topics from the beginning into memory (demo, tests, benchmarks)."""

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: Any  # the decoded JSON
    timestamp_ms: int | None = None  # the record's timestamp (the producer's clock)
    arrived: float = 0.0  # time.monotonic() when this reader received it


class OutputReader:
    """Consumes `topics` in the background, without a consumer group.

    Reads only committed records by default: what a gateway sees under exactly-once.
    """

    def __init__(self, bootstrap: str, topics: list[str],
                 isolation_level: str = "read_committed") -> None:
        self.bootstrap = bootstrap
        self.isolation_level = isolation_level
        self.topics = topics
        self.records: dict[str, list[Record]] = defaultdict(list)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.last_arrival = time.monotonic()

    async def start(self) -> "OutputReader":
        self._consumer = AIOKafkaConsumer(
            *self.topics, bootstrap_servers=self.bootstrap, group_id=None,
            auto_offset_reset="earliest", enable_auto_commit=False, metadata_max_age_ms=1000,
            fetch_max_bytes=16 * 1024 * 1024, isolation_level=self.isolation_level)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            now = time.monotonic()
            for tp, messages in batches.items():
                for m in messages:
                    key = m.key.decode("utf-8", errors="replace") if m.key is not None else None
                    self.records[tp.topic].append(
                        Record(tp.topic, tp.partition, m.offset, key, json.loads(m.value),
                               m.timestamp, now))
                self.last_arrival = now

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def values(self, topic: str, where: Callable[[Any], bool] = lambda v: True) -> list[Any]:
        return [r.value for r in self.records[topic] if where(r.value)]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0,
                       what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self._task is not None and self._task.done():
                self._task.result()  # re-raise the reader's failure
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.1)

    async def settle(self, quiet: float = 2.0, timeout: float = 60.0) -> None:
        """Wait until nothing new has arrived for `quiet` seconds."""
        await self.wait_for(lambda: time.monotonic() - self.last_arrival >= quiet, timeout,
                            "outputs to settle")
