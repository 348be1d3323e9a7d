"""Rounds on a schedule: a round (or the reward notice) whose time the program file
gives is fired by the worker itself once it is due.

One worker fires it: the one that holds partition 0 of the deadlines topic. It
publishes the deadline event to that partition, and the deadlines agent, reading it
there, records the round as fired in the rounds-done table (key "fired", partition
0), so no restart and no other worker fires it again. Deadlines published by hand
(`waiver deadline`, which also writes to partition 0) are recorded the same way, so
the schedule does not repeat them. A deadline that upstream publishes to another
partition is not seen here; should the schedule then fire the same round, each
partition finds the round done and sends nothing (streams/agents/customers.py).
"""

import logging
from typing import TYPE_CHECKING

from faust.types import TP

from streams.app import utcnow
from streams.publish import deadline_event, publish_lines
from streams.writer import store_of

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("waiver")

FIRED_KEY = "fired"  # in the rounds-done table, partition 0: label -> what fired it
CHECK_SECONDS = 1.0


def attach(p: "Pipeline") -> None:
    schedule = p.program.schedule()
    if not schedule:
        return
    published: set[str] = set()  # by this process, not yet recorded

    @p.app.timer(CHECK_SECONDS, name="schedule")
    async def fire_due_deadlines() -> None:
        app = p.app
        if (app.rebalancing or app.tables.recovery.in_recovery
                or TP(p.names.deadlines, 0) not in app.consumer.assignment()):
            return
        fired = store_of(p.rounds_done).get_in(0, FIRED_KEY) or {}
        now = utcnow()
        for label, kind, round_no, at in schedule:
            if at > now or label in fired or label in published:
                continue
            value = deadline_event(kind, at, round_no, f"schedule-{label}")
            await publish_lines(p.settings.bootstrap, p.names.deadlines, [value], partition=0,
                                **p.settings.client_options())
            published.add(label)
            log.info("scheduled %s %s due %s: fired", kind, round_no or "", at.isoformat())
