"""The tables' store: staged changes, what reaches the backend, what survives a restart."""

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.app import Pipeline
from streams.settings import Settings
from streams.state_store import DataDirInUse, PartitionedStore, RocksPartition, lock_data_dir
from streams.writer import store_of


def build(data_dir: Path, store: str = "rocksdb") -> Pipeline:
    return Pipeline(Settings(processing_guarantee="at_least_once", topic_prefix="unit-store.",
                             data_dir=str(data_dir), store=store))


def close(pipeline: Pipeline) -> None:
    """What a worker's stop does to its stores."""
    for table in (pipeline.customers, pipeline.rounds_done):
        asyncio.run(store_of(table).on_stop())


@pytest.fixture(params=["rocksdb", "memory"])
def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pipeline]:
    pipeline = build(tmp_path, request.param)
    yield pipeline
    close(pipeline)


def changelog(pipeline: Pipeline, partition: int) -> TP:
    return TP(pipeline.customers.changelog_topic.get_topic_name(), partition)


def staged(store: PartitionedStore, partition: int, **values: bytes | None) -> Any:
    return store.stage(partition, {store.encode_key(k): v for k, v in values.items()})


@settings(max_examples=300, deadline=None)
@given(key=st.text(max_size=80), state=st.binary(max_size=200),
       rounds=st.dictionaries(st.sampled_from(["1", "2", "3", "reward_notice"]),
                              st.dictionaries(st.text(max_size=10), st.integers()),
                              max_size=4))
def test_keys_and_values_are_encoded_as_faust_encodes_changelog_records(
        key: str, state: bytes, rounds: dict[str, Any]) -> None:
    pipeline = PIPELINE
    serializers = pipeline.app.serializers
    for table, value in ((pipeline.customers, state), (pipeline.rounds_done, rounds)):
        store = store_of(table)
        raw_key = store.encode_key(key)
        assert raw_key == serializers.dumps_key(table.key_type, key,
                                                serializer=table.key_serializer)
        assert store.decode_key(raw_key) == key
        raw = store.encode_value(value)
        assert raw == serializers.dumps_value(table.value_type, value,
                                              serializer=table.value_serializer)
        assert store.decode_value(raw) == value


PIPELINE = Pipeline(Settings(processing_guarantee="at_least_once", topic_prefix="unit-codec.",
                             store="memory"))


def test_staged_changes_are_read_at_once_and_written_at_their_commit(pipeline: Pipeline
                                                                     ) -> None:
    store = store_of(pipeline.customers)
    first = staged(store, 3, A=b"a1", B=b"b1")
    second = staged(store, 3, A=b"a2")
    assert store.get_in(3, "A") == b"a2" and store.get_in(3, "B") == b"b1"
    held = store._partitions[3].backend
    assert held.get(store.encode_key("A")) is None
    first.commit(10)
    # The backend has the first stage; reads still see the newer, staged value.
    assert held.get(store.encode_key("A")) == b"a1" and held.offset == 10
    assert store.get_in(3, "A") == b"a2"
    second.commit(11)
    assert held.get(store.encode_key("A")) == b"a2" and held.offset == 11
    assert not store._partitions[3].staged
    assert dict(store.items_in(3)) == {"A": b"a2", "B": b"b1"}
    assert store.get_in(2, "A") is None and dict(store.items_in(2)) == {}


def test_a_later_commit_writes_the_earlier_stages_with_it(pipeline: Pipeline) -> None:
    store = store_of(pipeline.customers)
    staged(store, 0, A=b"a1")
    last = staged(store, 0, B=b"b1")
    last.commit(7)  # one transaction's commit covers every stage it holds
    assert store.persisted_offset(changelog(pipeline, 0)) == 7
    assert not store._partitions[0].staged
    assert dict(store._partitions[0].backend.items()) == {
        store.encode_key("A"): b"a1", store.encode_key("B"): b"b1"}


def test_a_revoked_partition_s_stages_are_never_written(pipeline: Pipeline) -> None:
    store = store_of(pipeline.customers)
    staged(store, 1, A=b"old").commit(4)
    pending = staged(store, 1, A=b"uncommitted")
    asyncio.run(store.on_rebalance(set(), {changelog(pipeline, 1)}, set()))
    pending.commit(5)  # its acks came after the revocation: ignored
    asyncio.run(store.on_rebalance({changelog(pipeline, 1)}, set(), set()))
    expected = b"old" if store.backend == "rocksdb" else None  # memory starts empty
    assert store.get_in(1, "A") == expected


def test_recovery_writes_changelog_records_as_they_are(pipeline: Pipeline) -> None:
    store = store_of(pipeline.customers)
    tp = changelog(pipeline, 2)

    def record(offset: int, key: str, value: bytes | None) -> SimpleNamespace:
        message = SimpleNamespace(tp=tp, partition=2, offset=offset,
                                  key=store.encode_key(key), value=value)
        return SimpleNamespace(message=message)

    store.apply_changelog_batch([record(5, "A", b"a"), record(6, "B", b"b"),
                                 record(8, "A", b"a2"), record(9, "B", None)], None, None)
    assert store.persisted_offset(tp) == 9
    assert dict(store.items_in(2)) == {"A": b"a2"}


def test_rocksdb_keeps_committed_state_across_a_restart(tmp_path: Path) -> None:
    pipeline = build(tmp_path)
    store = store_of(pipeline.customers)
    staged(store, 4, A=b"committed").commit(12)
    staged(store, 4, A=b"in an open transaction", B=b"too")  # killed before its commit
    close(pipeline)
    again = build(tmp_path)
    try:
        store = store_of(again.customers)
        assert store.persisted_offset(changelog(again, 4)) == 12
        assert dict(store.items_in(4)) == {"A": b"committed"}
    finally:
        close(again)


def test_state_past_the_changelog_s_end_is_rebuilt(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = build(tmp_path)
    store = store_of(pipeline.customers)
    staged(store, 0, A=b"from another broker").commit(30)
    staged(store, 1, B=b"kept").commit(3)
    close(pipeline)
    again = build(tmp_path)
    store = store_of(again.customers)
    ends = {changelog(again, 0): 5, changelog(again, 1): 9}

    async def highwaters(*tps: TP) -> dict[TP, int]:
        return {tp: ends[tp] for tp in tps}

    monkeypatch.setattr(again.app.consumer, "highwaters", highwaters)
    try:
        assigned = set(ends)
        asyncio.run(store.on_rebalance(assigned, set(), assigned))
        assert store.persisted_offset(changelog(again, 0)) is None
        assert dict(store.items_in(0)) == {}
        assert store.persisted_offset(changelog(again, 1)) == 3
        assert dict(store.items_in(1)) == {"B": b"kept"}
    finally:
        close(again)


def test_one_worker_per_data_directory(tmp_path: Path) -> None:
    held = lock_data_dir(tmp_path)
    try:
        with pytest.raises(DataDirInUse, match=str(tmp_path)):
            lock_data_dir(tmp_path)
    finally:
        held.close()
    lock_data_dir(tmp_path).close()  # free again once the first worker is gone


def test_a_killed_worker_s_database_keeps_every_batch_it_wrote(tmp_path: Path) -> None:
    # The process ends without closing (or flushing) its database, as under SIGKILL.
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from streams.state_store import RocksPartition\n"
        "db = RocksPartition(Path(sys.argv[1]))\n"
        "for i in range(50):\n"
        "    db.write({f'\"C{i}\"'.encode(): b'state'}, i)\n"
        "os._exit(9)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "p0")])
    assert done.returncode == 9
    db = RocksPartition(tmp_path / "p0")
    assert db.offset == 49 and db.get(b'"C49"') == b"state" and len(list(db.items())) == 50
    db.close()
