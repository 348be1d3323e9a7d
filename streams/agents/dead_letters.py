"""Parking a bad event on the dead-letter topic: one path for every agent."""

from typing import TYPE_CHECKING

from streams.app import log, utcnow
from streams.codec import dead_letter
from streams.writer import EventWriter

MAX_KEY_BYTES = 4096

if TYPE_CHECKING:
    from faust.types import EventT

    from streams.app import Pipeline


async def to_dead_letter(p: "Pipeline", event: "EventT", source: str, error: str,
                         writer: EventWriter | None = None) -> None:
    """Send the raw event to the dead-letter topic with `error`, count it, and show it
    on the ops page. With `writer`, inside that open batch (the caller marks the
    event done); else in a write of its own."""
    msg = event.message
    letter = dead_letter(source, msg.partition, msg.offset, msg.key, msg.value, error, utcnow())
    log.warning("dead letter from %s[%d]@%d: %s", source, msg.partition, msg.offset, error)
    p.metrics.dead_letters.labels(source).inc()
    p.recent_dead_letters.append({"source_topic": source, "partition": msg.partition,
                                  "offset": msg.offset, "error": error,
                                  "received_at": letter.received_at.isoformat()})
    value = letter.model_dump_json().encode()
    # The letter keeps the key (truncated like the value); a huge one is not its key.
    key = msg.key if msg.key is None or len(msg.key) <= MAX_KEY_BYTES else None
    if writer is not None:
        await writer.send(p.names.dead_letter, key, value)
        return
    async with EventWriter(p, [event]) as w:
        await w.send(p.names.dead_letter, key, value)
        w.done(event)
