"""A fix for a record-dropping race in faust-streaming 0.15's table recovery.

After recovery, `Recovery.on_recovery_completed` (and `_resume_streams`) resume the
stream partitions and seek them to the committed offsets while the consumer's
flow is still active from recovery, then resume flow control, which *clears* the
stream queues. Records fetched in between are dropped from the queues after the
consumer has already marked them read, so the worker never processes them (seen
here: a round trigger lost after a restart, the round never finishing). Stopping
the consumer's flow first means nothing is handed to the streams until the seek
and the clear are done; the original code resumes the flow at its end.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from faust.tables.recovery import Recovery

_INSTALLED = False


def _flow_stopped_first(method: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: Recovery, *args: Any, **kwargs: Any) -> None:
        self.app.consumer.stop_flow()
        await method(self, *args, **kwargs)

    return wrapper


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    Recovery.on_recovery_completed = _flow_stopped_first(Recovery.on_recovery_completed)
    Recovery._resume_streams = _flow_stopped_first(Recovery._resume_streams)
    _INSTALLED = True
