"""The batch writer's view of the tables: what later events of a batch read."""

import asyncio
import json
from types import SimpleNamespace

import pytest

from schemas.state import CustomerState
from streams.agents.customers import stored_partition
from streams.app import Pipeline
from streams.batches import by_key
from streams.settings import Settings
from streams.writer import EventWriter, PendingWrites


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(Settings(topic_prefix="unit-writer."))


def event(partition: int, offset: int = 0, topic: str = "t") -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset,
                                                   topic=topic))


def test_later_events_read_the_batch_s_changes(pipeline: Pipeline) -> None:
    table = pipeline.customers
    table.data["old"] = b"stored"
    table.data["kept"] = b"kept"
    first, second = event(0, 1), event(0, 2)
    w = EventWriter(pipeline, [first, second])
    w.put(table, "old", b"changed")
    w.put(table, "new", b"created")
    assert w.get(table, "old") == b"changed"  # the current event sees its own change
    w.done(first)
    assert w.get(table, "new") == b"created"
    assert dict(w.items(table)) == {"old": b"changed", "kept": b"kept", "new": b"created"}
    # Restricted to some of the table's keys (a round's index): those, and every change.
    assert dict(w.items(table, ["kept"])) == {"kept": b"kept", "old": b"changed",
                                              "new": b"created"}
    # The table itself changes only when the writer is done (at its exit).
    assert table.data["old"] == b"stored" and "new" not in table.data


def test_a_failed_event_s_changes_are_dropped(pipeline: Pipeline) -> None:
    table = pipeline.customers
    good, bad = event(1, 1), event(1, 2)
    w = EventWriter(pipeline, [good, bad])
    w.put(table, "a", b"from good")
    w.done(good)
    w.put(table, "a", b"from bad")
    w.put(table, "b", b"from bad")
    w.discard()
    w.done(bad)  # parked on the dead-letter topic, still acked
    assert w.get(table, "a") == b"from good"
    assert w.get(table, "b") is None
    assert w._done == [good, bad]


def test_batches_keep_arrival_order_within_each_key() -> None:
    events = [event(p, i) for i, p in enumerate([0, 1, 0, 2, 1, 0])]
    parts = by_key(events, lambda e: e.message.partition)
    assert [[e.message.offset for e in part] for part in parts] == [[0, 2, 5], [1, 4], [3]]


@pytest.mark.parametrize("customer_id",
                         ["C1", 'quote"d', "back\\slash", "한글", 'p"partition":9'])
@pytest.mark.parametrize("partition", [0, 3, 17])
def test_stored_partition_reads_the_state_s_own_field(customer_id: str, partition: int) -> None:
    state = CustomerState(customer_id=customer_id, partition=partition)
    assert stored_partition(state.model_dump_json().encode()) == partition
    # Faust's earlier JSON encoding (spaces after separators) reads the same.
    assert stored_partition(json.dumps(state.model_dump(mode="json")).encode()) == partition


@pytest.mark.asyncio
async def test_pending_writes_are_kept_per_partition_until_done() -> None:
    pending = PendingWrites(depth=2)
    gate = asyncio.Event()
    first = asyncio.create_task(gate.wait())
    pending.add(0, first)
    second = asyncio.create_task(gate.wait())
    pending.add(0, second)
    other = asyncio.create_task(asyncio.sleep(0))
    pending.add(1, other)
    assert pending.last(0) is second and pending.last(1) is other
    await other
    await asyncio.sleep(0)
    assert pending.last(1) is None
    await pending.make_room(1)  # nothing in flight there
    room = asyncio.create_task(pending.make_room(0))  # two in flight: full
    await asyncio.sleep(0.01)
    assert not room.done()
    gate.set()
    await asyncio.wait_for(room, 1)
    await asyncio.wait_for(pending.drain(), 1)
    assert pending.last(0) is None and first.done() and second.done()
