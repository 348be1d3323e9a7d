"""Fixes for faust-streaming 0.15's table recovery, each seen losing data here.

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

3. Not a defect but a hard-coded setting: the stream consumer's fetch may wait
   1500 ms for data. A broker that answers a waiting fetch only when the wait
   expires (tansu) adds that to every event's latency. `fetch_max_wait_ms` makes
   it configurable; Apache Kafka answers as soon as data arrives either way.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_INSTALLED = False


def _flow_stopped_first(method: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: Recovery, *args: Any, **kwargs: Any) -> None:
        self.app.consumer.stop_flow()
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


def install(fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    global _INSTALLED, FETCH_MAX_WAIT_MS
    FETCH_MAX_WAIT_MS = fetch_max_wait_ms
    if _INSTALLED:
        return
    AIOKafkaConsumerThread._create_worker_consumer = _with_fetch_wait(
        AIOKafkaConsumerThread._create_worker_consumer)
    AIOKafkaConsumerThread._highwaters = _highwaters
    Recovery.on_recovery_completed = _flow_stopped_first(Recovery.on_recovery_completed)
    Recovery._resume_streams = _flow_stopped_first(Recovery._resume_streams)
    _INSTALLED = True
