"""Table storage by partition that holds only what Kafka has committed.

Each changelog partition of a table has its own backend: a RocksDB database under
the worker's data directory (the default: it survives a restart, so recovery
replays only the changelog's tail after the offset the database recorded), or a
dict in memory (replayed from the changelog's start after every restart).

Faust's own RocksDB store writes a change the moment the agent makes it. Under
exactly-once that change may belong to a transaction that is later aborted (the
worker killed before its commit): the store would then hold state the changelog
does not, and its offset would skip the records that replace it. So changes are
*staged* here first, readable at once by later events, and reach the backend with
the changelog offset that covers them only once Kafka holds them for good: at the
commit of their transaction (exactly-once), or when the broker has acknowledged
their changelog records (at-least-once). A crash loses staged changes only, which
the changelog replay or the re-read input events bring back.

Keys and values are kept as their changelog bytes, so recovery writes records as
they come, without decoding them.
"""

import fcntl
import json
import logging
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from faust.stores import STORES
from faust.stores.base import Store
from faust.types import TP, EventT

log = logging.getLogger("waiver")

SCHEME = "waiver"  # store="waiver://local", options={"backend": "rocksdb" | "memory"}
BACKENDS = ("rocksdb", "memory")
OFFSET_KEY = b"__faust\0offset__"  # never a table key: those are JSON texts


class MemoryPartition:
    """One partition's data in a dict; gone with the process."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.offset: int | None = None

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def write(self, changes: dict[bytes, bytes | None], offset: int | None) -> None:
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        if offset is not None:
            self.offset = offset

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.data.items()))

    def size(self) -> int:
        return len(self.data)

    def close(self) -> None:
        self.data = {}


# One block cache and one memtable budget for every database of the worker (two tables
# times its partitions), as Kafka Streams bounds RocksDB's memory: per database,
# RocksDB's defaults (a 32 MiB cache, up to two 64 MiB memtables) add up to gigabytes.
CACHE_BYTES = 32 << 20
MEMTABLE_BYTES = 48 << 20
_shared: tuple[Any, Any] | None = None


def shared_memory() -> tuple[Any, Any]:
    """(block cache, write buffer manager charging its memtables to that cache)."""
    global _shared
    if _shared is None:
        import rocksdict

        cache = rocksdict.Cache(CACHE_BYTES)
        _shared = (cache, rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            MEMTABLE_BYTES, False, cache))
    return _shared


class RocksPartition:
    """One partition's data in a RocksDB database, with the changelog offset it has
    reached, written together in one batch.

    RocksDB's write-ahead log is kept but not synced: a killed worker's database comes
    back with every batch it wrote, so recovery replays only the changelog records
    after them (without the log, a kill lost what the memtables held, and at 1,000,000
    customers recovery replayed half the changelog). A machine crash loses the log's
    unsynced tail: the database then comes back at an earlier batch, data and offset
    together, and recovery replays from there."""

    def __init__(self, path: Path) -> None:
        import rocksdict

        self.path = path
        cache, memtables = shared_memory()
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_manager(memtables)
        options.set_write_buffer_size(4 << 20)
        options.set_max_write_buffer_number(2)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(cache)
        options.set_block_based_table_factory(table)
        self._rocksdict = rocksdict
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = rocksdict.Rdict(str(path), options)
        raw = self.db.get(OFFSET_KEY)
        self.offset: int | None = int(raw) if raw is not None else None

    def get(self, key: bytes) -> bytes | None:
        return self.db.get(key)

    def write(self, changes: dict[bytes, bytes | None], offset: int | None) -> None:
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if offset is not None:
            batch.put(OFFSET_KEY, str(offset).encode())
            self.offset = offset
        self.db.write(batch)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self.db.items():
            if key != OFFSET_KEY:
                yield key, value

    def size(self) -> int:
        return self.db.property_int_value("rocksdb.estimate-num-keys") or 0

    def close(self) -> None:
        self.db.flush()  # a shorter log to replay at the next open
        self.db.close()
        # RocksDB's lock on the folder goes with the last reference to the handle.
        del self.db


@dataclass
class Partition:
    """A partition's backend and its staged changes, oldest first."""

    backend: MemoryPartition | RocksPartition
    # key -> (sequence number of the stage that set it last, value or None)
    staged: dict[bytes, tuple[int, bytes | None]] = field(default_factory=dict)
    stages: deque[tuple[int, dict[bytes, bytes | None]]] = field(default_factory=deque)
    open: bool = True

    def get(self, key: bytes) -> bytes | None:
        entry = self.staged.get(key)
        if entry is not None:
            return entry[1]
        return self.backend.get(key)


@dataclass(frozen=True)
class Stage:
    """Staged changes of one writer, to be committed (or forgotten) as one."""

    store: "PartitionedStore"
    partition: Partition
    seq: int

    def commit(self, offset: int | None) -> None:
        """Kafka holds these changes for good, up to changelog `offset`: write them,
        and every earlier stage of the partition, to the backend."""
        self.store.commit(self, offset)


class PartitionedStore(Store):
    """A Faust table store of per-partition backends with staged changes (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        backend = (self.options or {}).get("backend", "memory")
        if backend not in BACKENDS:
            raise ValueError(f"WAIVER_STORE: {backend!r} is not one of {', '.join(BACKENDS)}")
        self.backend = backend
        self._partitions: dict[int, Partition] = {}
        self._seq = 0
        self._raw_values = self.value_serializer == "raw"
        self._json_keys = self.key_serializer == "json" and self.key_type is str

    # -- encoding, as Faust encodes changelog records (tests/unit/test_state_store.py)

    def encode_key(self, key: Any) -> bytes:
        if self._json_keys and isinstance(key, str):
            if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key:
                return b'"' + key.encode() + b'"'  # what json.dumps gives, 5 times faster
            return json.dumps(key).encode()
        return self._encode_key(key)

    def decode_key(self, raw: bytes) -> Any:
        if self._json_keys:
            return raw[1:-1].decode() if b"\\" not in raw else json.loads(raw)
        return self._decode_key(raw)

    def encode_value(self, value: Any) -> bytes | None:
        if value is None:
            return None
        if self._raw_values and isinstance(value, bytes):
            return value
        return self._encode_value(value)

    def decode_value(self, raw: bytes | None) -> Any:
        if raw is None or self._raw_values:
            return raw
        return self._decode_value(raw)

    # -- partitions

    @property
    def path(self) -> Path:
        return Path(self.app.conf.tabledir)

    def partition_path(self, partition: int) -> Path:
        return self.path / f"{self.table_name}-{partition}.db"

    def _open(self, partition: int) -> Partition:
        held = self._partitions.get(partition)
        if held is None:
            backend = RocksPartition(self.partition_path(partition)) \
                if self.backend == "rocksdb" else MemoryPartition()
            held = self._partitions[partition] = Partition(backend)
        return held

    def _close(self, partition: int) -> None:
        held = self._partitions.pop(partition, None)
        if held is not None:
            held.open = False
            held.backend.close()

    def _wipe(self, partition: int) -> None:
        self._close(partition)
        if self.backend == "rocksdb":
            shutil.rmtree(self.partition_path(partition), ignore_errors=True)

    def _changelog_partitions(self, tps: Iterable[TP]) -> set[int]:
        topic = self.table.changelog_topic.get_topic_name()
        return {tp.partition for tp in tps if tp.topic == topic}

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
                           generation_id: int = 0) -> None:
        """Close what went elsewhere (its staged changes are not committed: the new
        owner reads them from Kafka if they were), open what came here. A partition
        whose recorded offset is past the changelog's end belongs to another
        changelog (a broker that lost its data, a topic created anew): wiped, and
        read from the start."""
        for partition in self._changelog_partitions(revoked):
            self._close(partition)
        mine = self._changelog_partitions(assigned)
        for partition in set(self._partitions) - mine:
            self._close(partition)
        opened = [self._open(partition) for partition in sorted(mine)]
        recorded = {p: held.backend.offset for p, held in zip(sorted(mine), opened, strict=True)
                    if held.backend.offset is not None and p in
                    self._changelog_partitions(newly_assigned)}
        if recorded:
            topic = self.table.changelog_topic.get_topic_name()
            ends = await self.app.consumer.highwaters(*(TP(topic, p) for p in recorded))
            for tp, end in ends.items():
                if end is not None and recorded[tp.partition] >= end:
                    log.warning("table %s partition %d: local state is at changelog offset "
                                "%d, the changelog ends at %d; rebuilding it from the "
                                "changelog", self.table_name, tp.partition,
                                recorded[tp.partition], end)
                    self._wipe(tp.partition)
                    self._open(tp.partition)

    async def on_stop(self) -> None:
        for partition in list(self._partitions):
            self._close(partition)

    def reset_state(self) -> None:
        for partition in list(self._partitions):
            self._wipe(partition)
        if self.backend == "rocksdb":
            for path in self.path.glob(f"{self.table_name}-*.db"):
                shutil.rmtree(path, ignore_errors=True)

    # -- Faust's recovery

    def persisted_offset(self, tp: TP) -> int | None:
        return self._open(tp.partition).backend.offset

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self._open(tp.partition).backend.write({}, offset)

    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        """Changelog records as they are, with the offset each partition reached."""
        changes: dict[int, dict[bytes, bytes | None]] = {}
        offsets: dict[int, int] = {}
        for event in batch:
            msg = event.message
            changes.setdefault(msg.partition, {})[msg.key] = msg.value
            offsets[msg.partition] = max(msg.offset, offsets.get(msg.partition, -1))
        for partition, records in changes.items():
            self._open(partition).backend.write(records, offsets[partition])

    # -- what the writer uses (streams/writer.py)

    def get_in(self, partition: int, key: Any) -> Any:
        """The value of `key` in `partition`, staged changes included."""
        held = self._partitions.get(partition)
        if held is None:
            return None
        return self.decode_value(held.get(self.encode_key(key)))

    def items_in(self, partition: int) -> Iterator[tuple[Any, Any]]:
        """Every (key, value) of `partition`, staged changes included."""
        held = self._partitions.get(partition)
        if held is None:
            return
        staged = held.staged
        decode_key, decode_value = self.decode_key, self.decode_value
        for raw_key, raw in held.backend.items():
            if raw_key not in staged:
                yield decode_key(raw_key), decode_value(raw)
        for raw_key, (_, raw) in list(staged.items()):
            if raw is not None:
                yield decode_key(raw_key), decode_value(raw)

    def size_in(self, partition: int) -> int:
        """About how many keys `partition` holds (RocksDB estimates)."""
        held = self._partitions.get(partition)
        return held.backend.size() if held is not None else 0

    def stage(self, partition: int, changes: dict[bytes, bytes | None]) -> Stage:
        """Encoded changes, readable at once, written to the backend by the returned
        stage's commit."""
        held = self._open(partition)
        self._seq += 1
        held.stages.append((self._seq, changes))
        for key, value in changes.items():
            held.staged[key] = (self._seq, value)
        return Stage(self, held, self._seq)

    def commit(self, stage: Stage, offset: int | None) -> None:
        held = stage.partition
        if not held.open:
            return  # revoked since: its new owner has it from the changelog
        merged: dict[bytes, bytes | None] = {}
        while held.stages and held.stages[0][0] <= stage.seq:
            merged.update(held.stages.popleft()[1])
        if offset is not None and held.backend.offset is not None:
            offset = max(offset, held.backend.offset)
        held.backend.write(merged, offset)
        for key in merged:
            entry = held.staged.get(key)
            if entry is not None and entry[0] <= stage.seq:
                del held.staged[key]

    # -- the mapping interface (lookups, metrics): the partitions active here

    def _active(self) -> Iterator[int]:
        topic = self.table.changelog_topic.get_topic_name()
        actives = self.app.assignor.assigned_actives()
        for partition in list(self._partitions):
            if TP(topic, partition) in actives:
                yield partition

    def __getitem__(self, key: Any) -> Any:
        raw_key = self.encode_key(key)
        for partition in self._active():
            value = self._partitions[partition].get(raw_key)
            if value is not None:
                return self.decode_value(value)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __setitem__(self, key: Any, value: Any) -> None:
        raise NotImplementedError("tables change through streams.writer.EventWriter")

    def __delitem__(self, key: Any) -> None:
        raise NotImplementedError("tables change through streams.writer.EventWriter")

    def __iter__(self) -> Iterator[Any]:
        for partition in self._active():
            for key, _ in self.items_in(partition):
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def items(self) -> Any:
        return [pair for partition in list(self._active()) for pair in self.items_in(partition)]

    def keys(self) -> Any:
        return list(self)

    def values(self) -> Any:
        return [value for _, value in self.items()]

    def _clear(self) -> None:
        self.reset_state()

    async def backup_partition(self, tp: TP | int, flush: bool = True, purge: bool = False,
                               keep: int = 1) -> None:
        raise NotImplementedError("the changelog is the backup")

    def restore_backup(self, tp: TP | int, latest: bool = True, backup_id: int = 0) -> None:
        raise NotImplementedError("the changelog is the backup")


def register() -> None:
    """Make `waiver://` a Faust store URL."""
    STORES.aliases.setdefault(SCHEME, "streams.state_store:PartitionedStore")


class DataDirInUse(RuntimeError):
    pass


def lock_data_dir(path: Path) -> IO[bytes]:
    """Hold `path` for this worker: two workers on one data directory would share
    their RocksDB databases. The lock goes with the process, however it ends."""
    path.mkdir(parents=True, exist_ok=True)
    handle = (path / "worker.lock").open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(f"another worker uses the data directory {path}; give each "
                           "worker its own (--data-dir / WAIVER_DATA_DIR)") from None
    return handle
