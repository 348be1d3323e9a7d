"""The batch writer's view of the tables: what later events of a batch read."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from streams.app import Pipeline
from streams.batches import by_key
from streams.settings import Settings
from streams.writer import (
    RECORD_OVERHEAD,
    EventWriter,
    PendingWrites,
    RecordTooLarge,
    store_of,
)


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    pipeline = Pipeline(Settings(processing_guarantee="at_least_once",
                                 topic_prefix="unit-writer.", data_dir=str(tmp_path)))
    yield pipeline
    for table in (pipeline.customers, pipeline.rounds_done):
        store_of(table).reset_state()  # closes its databases


def event(partition: int, offset: int = 0, topic: str = "t") -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset,
                                                   topic=topic))


def test_later_events_read_the_batch_s_changes(pipeline: Pipeline) -> None:
    table = pipeline.customers
    store = store_of(table)
    store.stage(0, {store.encode_key("old"): b"stored", store.encode_key("kept"): b"kept"}
                ).commit(1)
    store.stage(1, {store.encode_key("elsewhere"): b"other partition"}).commit(1)
    first, second = event(0, 1), event(0, 2)
    w = EventWriter(pipeline, [first, second])
    w.put(table, "old", b"changed")
    w.put(table, "new", b"created")
    assert w.get(table, "old") == b"changed"  # the current event sees its own change
    w.done(first)
    assert w.get(table, "new") == b"created"
    # The batch's partition only, as the batch has changed it.
    assert dict(w.items(table)) == {"old": b"changed", "kept": b"kept", "new": b"created"}
    assert w.get(table, "elsewhere") is None
    # The store changes only when the writer is done (at its exit).
    assert store.get_in(0, "old") == b"stored" and store.get_in(0, "new") is None


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


def test_a_transaction_s_stages_reach_the_store_at_its_commit_only(pipeline: Pipeline
                                                                    ) -> None:
    table = pipeline.customers
    store = store_of(table)
    w = EventWriter(pipeline, [event(2, 7)])
    w.put(table, "C1", b"state")
    w.done(w.events[0])
    stages = w._stage_tables()
    changelog = (table.changelog_topic.get_topic_name(), 2)
    assert [tp for tp, _ in stages] == [changelog]
    ack: asyncio.Future[Any] = asyncio.Future(loop=asyncio.new_event_loop())
    ack.set_result(SimpleNamespace(offset=40))  # a batch of 3 records from offset 40
    pipeline.committer.add("app-0-2", stages[0][1], [(ack, 3)])
    assert store.get_in(2, "C1") == b"state"  # later batches read it at once
    assert store.persisted_offset(TP(*changelog)) is None  # not written yet
    pipeline.committer.committed("app-0-1")  # another partition's transaction
    assert store.persisted_offset(TP(*changelog)) is None
    pipeline.committer.committed("app-0-2")
    assert store.persisted_offset(TP(*changelog)) == 42
    pipeline.committer.committed("app-0-2")  # nothing twice
    assert store.persisted_offset(TP(*changelog)) == 42


def test_batches_keep_arrival_order_within_each_key() -> None:
    events = [event(p, i) for i, p in enumerate([0, 1, 0, 2, 1, 0])]
    parts = by_key(events, lambda e: e.message.partition)
    assert [[e.message.offset for e in part] for part in parts] == [[0, 2, 5], [1, 4], [3]]


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


def test_a_partition_the_topic_lacks_goes_to_the_default_partitioner(pipeline: Pipeline
                                                                      ) -> None:
    # A round's progress record names its partition; on a topic created with one
    # partition (by hand, or auto-created by a reader) it must still be written.
    sizes = {"progress": 1, "tasks": 8}
    w = EventWriter(pipeline, [event(3, 1)])
    w._producer = SimpleNamespace(
        client=SimpleNamespace(cluster=SimpleNamespace(
            partitions_for_topic=lambda t: set(range(sizes[t])) if t in sizes else None)))
    appended: list[tuple[str, int | None]] = []

    async def append(topic: str, key: Any, value: Any, partition: int | None,
                     headers: Any) -> None:
        appended.append((topic, partition))

    w._append = append  # type: ignore[method-assign]
    asyncio.run(w.send("progress", None, b"{}", partition=3))
    asyncio.run(w.send("tasks", b"C1", b"{}", partition=3))
    assert appended == [("progress", None), ("tasks", 3)]


def test_a_record_no_request_could_carry_is_refused_before_it_is_sent(pipeline: Pipeline
                                                                      ) -> None:
    w = EventWriter(pipeline, [event(0, 1)])
    limit = pipeline.app.conf.producer_max_request_size
    w.check_size(b"C1", b"x" * (limit - RECORD_OVERHEAD - 2))
    with pytest.raises(RecordTooLarge, match="exceeds"):
        w.check_size(b"C1", b"x" * limit)
    with pytest.raises(RecordTooLarge):
        w.put(pipeline.customers, "C1", b"x" * limit)
    assert w.get(pipeline.customers, "C1") is None
