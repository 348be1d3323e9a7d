"""Batches of stream events, for one broker round trip per batch instead of per event."""

import logging
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

from faust.types.tuples import ack_lock

if TYPE_CHECKING:
    from faust.types import EventT

log = logging.getLogger("waiver")


async def take_batches(stream: Any, max_batch: int, within: float
                       ) -> "AsyncIterator[list[EventT]]":
    """Events of `stream` in lists of up to `max_batch`, waiting at most `within`
    seconds to fill one, so a busy stream pays a broker round trip per batch, not
    per event. Faust acks a batch's events when the next batch is taken (the writer
    has acked them by then, once their writes were done).

    Events of an older consumer generation (fetched before a rebalance, perhaps
    during the table recovery that followed) are left out: Faust re-reads their
    partitions from the committed offsets, here or on their new owner."""
    app = stream.app
    async for events in stream.take_events(max_batch, within):
        yield current(app, list(events))


def current(app: Any, events: "list[EventT]") -> "list[EventT]":
    """The events of the consumer's current generation. The others are marked done
    without an ack (take_events would ack them): an ack could let a commit pass
    them before Faust has read them again."""
    generation = app.consumer_generation_id
    kept = [event for event in events if event.message.generation_id == generation]
    if len(kept) < len(events):
        log.info("left out %d events fetched before the rebalance (generation %d)",
                 len(events) - len(kept), generation)
        for event in events:
            if event.message.generation_id != generation:
                set_aside(app, event.message)
    return kept


def set_aside(app: Any, message: Any) -> None:
    """Mark `message` done without acking it: its offset is not among the acked ones, so
    no commit passes it, and neither take_events' ack nor a rebalance waits for it."""
    with ack_lock:
        message.acked = True
        app.consumer._unacked_messages.discard(message)


def take_back(app: Any, message: Any) -> None:
    """Undo `set_aside`: `message` is to be processed now, and acked by its writer.
    take_events' ack has passed it by, so the writer's is the only one to come and
    must be the last (streams.writer: incref)."""
    with ack_lock:
        message.acked = False
        message.refcount = 0
        app.consumer._unacked_messages.add(message)


def by_key(events: "Sequence[EventT]", key: "Callable[[EventT], Hashable]"
           ) -> "list[list[EventT]]":
    """`events` split by `key`, each part in the order it arrived."""
    parts: dict[Hashable, list[EventT]] = {}
    for event in events:
        parts.setdefault(key(event), []).append(event)
    return list(parts.values())
