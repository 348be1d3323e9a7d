"""A round trigger waits for the customer events of its partition that came before it."""

import asyncio
import weakref
from types import SimpleNamespace

import pytest
from faust.types import TP

from streams.round_barrier import RoundBarrier, behind

CANCEL, APPLY = "cancellations", "applications"


def test_behind_counts_what_is_neither_processed_nor_committed() -> None:
    a, b = TP(CANCEL, 0), TP(APPLY, 0)
    barrier = {a: 10, b: 4}
    assert behind(barrier, processed={a: 10}, committed={b: 4}) == 0
    assert behind(barrier, processed={a: 10, b: 2}, committed={b: 4}) == 0
    assert behind(barrier, processed={a: 9}, committed={a: 7, b: 4}) == 1
    assert behind(barrier, processed={}, committed={a: None, b: 4}) == 10
    assert behind({}, processed={}, committed={}) == 0


class Message(SimpleNamespace):
    def __hash__(self) -> int:
        return id(self)


def event(topic: str, offset: int, generation: int = 1, partition: int = 0) -> SimpleNamespace:
    return SimpleNamespace(message=Message(topic=topic, partition=partition, offset=offset,
                                           tp=TP(topic, partition), acked=False,
                                           generation_id=generation))


class Consumer:
    def __init__(self, ends: dict[TP, int], committed: dict[TP, int]) -> None:
        self.ends, self._committed_offset = ends, committed
        self._unacked_messages: weakref.WeakSet[Message] = weakref.WeakSet()
        self.asked: list[set[TP]] = []

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        self.asked.append(set(tps))
        return {tp: self.ends.get(tp, 0) for tp in tps}


@pytest.mark.asyncio
async def test_a_trigger_is_held_until_its_partition_catches_up() -> None:
    consumer = Consumer({TP(CANCEL, 0): 12, TP(APPLY, 0): 3}, {TP(CANCEL, 0): 10})
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=1)
    barrier = RoundBarrier(app, [CANCEL, APPLY])
    trigger = event("round-triggers", 5)
    consumer._unacked_messages.add(trigger.message)
    assert await barrier.admit([trigger]) == []
    # Held: marked acked so take_events' ack and a rebalance's wait skip it, uncounted.
    assert trigger.message.acked and trigger.message not in consumer._unacked_messages
    barrier.processed_event(event(APPLY, 2))
    barrier.processed_event(event(CANCEL, 10))
    assert barrier.released() == []
    barrier.processed_event(event(CANCEL, 11))
    assert barrier.released() == [trigger]
    assert not trigger.message.acked  # acked for real when its write is done
    assert barrier.held == []


@pytest.mark.asyncio
async def test_a_held_trigger_of_an_older_generation_is_dropped() -> None:
    consumer = Consumer({TP(CANCEL, 0): 5}, {})
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=1)
    barrier = RoundBarrier(app, [CANCEL])
    assert await barrier.admit([event("round-triggers", 0)]) == []
    app.consumer_generation_id = 2  # a rebalance: the trigger is read again from its offset
    assert barrier.released() == [] and barrier.held == []


def test_nothing_pending_admits_at_once() -> None:
    consumer = Consumer({TP(CANCEL, 0): 7}, {TP(CANCEL, 0): 7})
    barrier = RoundBarrier(SimpleNamespace(consumer=consumer, consumer_generation_id=1),
                           [CANCEL])
    trigger = event("round-triggers", 0)
    assert asyncio.run(barrier.admit([trigger])) == [trigger]


def test_unknown_end_offsets_let_the_trigger_run() -> None:
    class Failing(Consumer):
        async def highwaters(self, *tps: TP) -> dict[TP, int]:
            raise ConnectionError("broker gone")

    consumer = Failing({}, {})
    barrier = RoundBarrier(SimpleNamespace(consumer=consumer, consumer_generation_id=1),
                           [CANCEL])
    trigger = event("round-triggers", 0)
    assert asyncio.run(barrier.admit([trigger])) == [trigger]
    assert barrier.held == []


@pytest.mark.asyncio
async def test_a_round_s_triggers_ask_for_end_offsets_once() -> None:
    consumer = Consumer({TP(CANCEL, 0): 4, TP(CANCEL, 1): 9, TP(APPLY, 1): 2},
                        {TP(CANCEL, 0): 4})
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=1)
    barrier = RoundBarrier(app, [CANCEL, APPLY])
    first, second = event("round-triggers", 0), event("round-triggers", 0, partition=1)
    consumer._unacked_messages.update([first.message, second.message])
    assert await barrier.admit([first, second]) == [first]
    assert consumer.asked == [{TP(t, p) for t in (CANCEL, APPLY) for p in (0, 1)}]
    # The held one waits for its own partition only.
    assert barrier.held == [(second, {TP(CANCEL, 1): 9, TP(APPLY, 1): 2})]


def test_transaction_markers_at_the_end_are_not_waited_for() -> None:
    # Exactly-once: the rerouted topic's end is 4, its last record at offset 1, then
    # markers at 2 and 3.
    tp = TP("rerouted", 0)
    barrier = {tp: 4}
    assert behind(barrier, processed={tp: 2}, committed={tp: 2}) == 2
    # The consumer has moved past the markers, and its last record there is processed.
    assert behind(barrier, processed={tp: 2}, committed={}, fetched={tp: (4, 1)}) == 0
    # Its last record fetched (offset 3) is not processed yet: still behind.
    assert behind(barrier, processed={tp: 2}, committed={}, fetched={tp: (4, 3)}) == 2
    # Not yet past the end.
    assert behind(barrier, processed={tp: 2}, committed={}, fetched={tp: (3, 1)}) == 2


@pytest.mark.asyncio
async def test_events_processed_before_a_rebalance_do_not_count_after_it() -> None:
    # Under exactly-once a rebalance aborts what was not committed: those events are
    # read and processed again, and the trigger must wait for that.
    consumer = Consumer({TP(CANCEL, 0): 5}, {})
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=1)
    barrier = RoundBarrier(app, [CANCEL])
    barrier.processed_event(event(CANCEL, 4))
    app.consumer_generation_id = 2
    trigger = event("round-triggers", 0, generation=2)
    consumer._unacked_messages.add(trigger.message)
    assert await barrier.admit([trigger]) == []
    barrier.processed_event(event(CANCEL, 4, generation=1))  # late, of the old generation
    assert barrier.released() == []
    barrier.processed_event(event(CANCEL, 4, generation=2))
    assert barrier.released() == [trigger]
