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


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    AIOKafkaConsumerThread._highwaters = _highwaters
    Recovery.on_recovery_completed = _flow_stopped_first(Recovery.on_recovery_completed)
    Recovery._resume_streams = _flow_stopped_first(Recovery._resume_streams)
    _INSTALLED = True
