"""The deadline agent: a deadline event arrives once, on any partition; it is
broadcast as a round trigger to every partition of the customer table, so each
worker walks the customers it owns."""

import asyncio
from typing import TYPE_CHECKING, Any

from schemas.events import Deadline
from streams.app import log, utcnow
from streams.codec import BadMessage, dead_letter, parse

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: "Pipeline") -> None:
    names = p.names

    @p.app.agent(p.deadlines, name="deadlines")
    async def deadlines(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                deadline = parse(Deadline, msg.value)
                if deadline.round not in p.program.rounds:
                    rounds = ", ".join(str(r) for r in sorted(p.program.rounds))
                    raise BadMessage(f"round: {deadline.round} is not a round of the program "
                                     f"({rounds})")
            except BadMessage as exc:
                letter = dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                                     str(exc), utcnow())
                log.warning("dead letter from %s: %s", msg.topic, exc)
                await (await p.publish(names.dead_letter, letter.key, letter))
                continue
            trigger = deadline.model_dump_json(include={"event_id", "round", "at"}).encode()
            futures = [
                await p.round_triggers.send(key=deadline.event_id.encode(), value=trigger,
                                            partition=partition)
                for partition in range(p.settings.partitions)
            ]
            await asyncio.gather(*futures)
            log.info("round %d (%s) broadcast to %d partitions", deadline.round,
                     deadline.event_id, len(futures))
