"""The deadline agent: a deadline event arrives once, on any partition; it is
broadcast as a round trigger to every partition of the customer table, so each
worker walks the customers it owns."""

from typing import TYPE_CHECKING, Any

from rules.program import round_label
from schemas.events import Deadline
from streams.agents.dead_letters import to_dead_letter
from streams.agents.schedule import FIRED_KEY
from streams.app import log, utcnow
from streams.codec import BadMessage, parse
from streams.writer import EventWriter

if TYPE_CHECKING:
    from faust.types import TableT

    from streams.app import Pipeline


def record_fired(w: EventWriter, table: "TableT", deadline: Deadline) -> None:
    """Note in `table` (rounds-done, partition 0) that this deadline's round fired."""
    fired = dict(w.get(table, FIRED_KEY) or {})
    fired.setdefault(round_label(deadline.kind, deadline.round),
                     {"event_id": deadline.event_id, "at": deadline.at.isoformat(),
                      "recorded_at": utcnow().isoformat()})
    w.put(table, FIRED_KEY, fired)


def attach(p: "Pipeline") -> None:
    names = p.names

    @p.app.agent(p.deadlines, name="deadlines")
    async def deadlines(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            p.metrics.events_in.labels(msg.topic).inc()
            try:
                deadline = parse(Deadline, msg.value)
                problem = p.program.refuses(deadline.kind, deadline.round)
                if problem is not None:
                    raise BadMessage(problem)
            except BadMessage as exc:
                await to_dead_letter(p, event, msg.topic, str(exc))
                continue
            trigger = deadline.model_dump_json(include={"event_id", "kind", "round",
                                                        "at"}).encode()
            with p.metrics.processing.labels("deadline").time():
                async with EventWriter(p, [event]) as w:
                    for partition in range(p.settings.partitions):
                        await w.send(names.round_triggers, deadline.event_id.encode(), trigger,
                                     partition=partition)
                    if msg.partition == 0:  # where the schedule looks (agents/schedule.py)
                        record_fired(w, p.rounds_done, deadline)
                    w.done(event)
            log.info("%s %s (%s) broadcast to %d partitions", deadline.kind,
                     deadline.round or "", deadline.event_id, p.settings.partitions)
