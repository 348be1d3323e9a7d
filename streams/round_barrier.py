"""A round trigger waits for the customer events its partition held when it came.

The customer topics and the round-trigger topic are read side by side, with no order
between them. After a restart (or any other re-read), a round trigger can be read
before cancellations published well before it: those customers are then decided
after their partition's round and miss it (seen in the kill-restart test under
at-least-once, 1 to 181 of 20,000 customers in 6 of 9 runs). So a trigger for
partition P is held until this worker has processed, in every customer topic of
partition P, the records below the end offsets the broker reported when the
trigger came. (Kafka Streams orders a task's input topics by timestamp for the
same reason.)

A held trigger is not acked, so no commit passes its offset: a crash or a rebalance
reads it again. It is set aside as stale events are (`streams.batches.set_aside`),
so that take_events does not ack it and a rebalance does not wait for it.

Under exactly-once a topic ends in transaction markers, not records: its end offset
can lie past the last record by one marker per transaction. So the barrier counts
records, not offsets: a partition has also caught up once the consumer's position is
at or past the end and the last record it fetched there is processed.
"""

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from faust.types import TP

from streams.batches import set_aside, take_back
from streams.faust_fixes import fetched_positions

if TYPE_CHECKING:
    from faust.types import EventT

log = logging.getLogger("waiver")


def behind(barrier: Mapping[Any, int], processed: Mapping[Any, int],
           committed: Mapping[Any, int | None],
           fetched: Mapping[Any, tuple[int, int]] | None = None) -> int:
    """How many offsets below `barrier[tp]` may still hold a record not done yet:
    neither processed here (`processed[tp]` is the offset after the last one) nor
    committed before, nor only markers (`fetched[tp]`: the consumer's position and
    the last record it returned, faust_fixes.fetched_positions)."""
    fetched = fetched or {}
    waiting = 0
    for tp, end in barrier.items():
        done = max(processed.get(tp, 0), committed.get(tp) or 0)
        if done >= end:
            continue
        position, last_record = fetched.get(tp, (None, -1))
        if position is not None and position >= end and processed.get(tp, 0) > last_record:
            continue
        waiting += end - done
    return waiting


class RoundBarrier:
    def __init__(self, app: Any, customer_topics: list[str]) -> None:
        self.app = app
        self.topics = customer_topics
        # tp -> offset after the last event processed, in the consumer generation
        # `generation`: after a rebalance, uncommitted events are read again.
        self.processed: dict[Any, int] = {}
        self.generation: int | None = None
        self.held: list[tuple[EventT, dict[Any, int]]] = []

    def _current(self) -> dict[Any, int]:
        if self.generation != self.app.consumer_generation_id:
            self.generation = self.app.consumer_generation_id
            self.processed = {}
        return self.processed

    def processed_event(self, event: "EventT") -> None:
        msg = event.message
        processed = self._current()
        if msg.generation_id == self.generation and msg.offset + 1 > processed.get(msg.tp, 0):
            processed[msg.tp] = msg.offset + 1

    def _behind(self, barrier: Mapping[Any, int]) -> int:
        consumer = self.app.consumer
        return behind(barrier, self._current(), consumer._committed_offset,
                      fetched_positions(consumer))

    async def admit(self, triggers: "list[EventT]") -> "list[EventT]":
        """The triggers to run now; the others are held (see `released`). One request
        for the end offsets of all their partitions: on Apache Kafka each waits behind
        the consumer's fetch in flight (up to its fetch wait), and a round's 8 triggers
        asked one by one took up to 0.9 s."""
        if not triggers:
            return []
        try:
            ends = await self.app.consumer.highwaters(*(
                TP(t, event.message.partition) for event in triggers for t in self.topics))
        except Exception as exc:  # no end offsets (broker trouble): run them, as before
            log.warning("round triggers run without waiting: end offsets unknown (%s: %s)",
                        type(exc).__name__, exc)
            return list(triggers)
        admitted = []
        for event in triggers:
            msg = event.message
            barrier = {tp: end for tp, end in ends.items()
                       if end and tp.partition == msg.partition}
            waiting = self._behind(barrier)
            if not waiting:
                admitted.append(event)
                continue
            set_aside(self.app, msg)
            self.held.append((event, barrier))
            log.info("round trigger %s[%d]@%d waits for up to %d customer events of its "
                     "partition read after it", msg.topic, msg.partition, msg.offset, waiting)
        return admitted

    def released(self) -> "list[EventT]":
        """The held triggers whose partition has caught up, ready to run (and be acked).
        Those of an older consumer generation are dropped: they are read again."""
        generation = self.app.consumer_generation_id
        ready, still = [], []
        for event, barrier in self.held:
            if event.message.generation_id != generation:
                continue
            if not self._behind(barrier):
                take_back(self.app, event.message)
                ready.append(event)
            else:
                still.append((event, barrier))
        self.held = still
        return ready
