"""Workers killed with SIGKILL in the middle of a guidance-round fan-out.

On Apache Kafka (exactly-once) every due customer gets exactly one task. On a
broker without transactions (tansu, at-least-once) none is lost; repeats carry
the same notification_id and are counted.
"""

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from streams.admin import changelog_topics
from streams.reader import OutputReader
from streams.runner import WorkerProcess
from streams.settings import Settings
from streams.topics import TopicNames
from tests.conftest import GUARANTEE, Publisher, worker_settings
from tests.factories import cancellation_dict
from tests.reliability.figures import record

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(900)]

CUSTOMERS = int(os.environ.get("WAIVER_CRASH_CUSTOMERS", "20000"))
PARTITIONS = 4


def population(tag: str, n: int) -> list[dict]:
    events = []
    for i in range(n):
        contact = ({"name": "홍길동", "phone": f"010-2000-{i % 10000:04d}", "email": None}
                   if i % 2 else {"name": "홍길동", "phone": None, "email": f"k{i}@example.com"})
        events.append(cancellation_dict(f"{tag}{i:06d}", contact=contact, event_id=f"{tag}-c{i}"))
    return events


async def changelog_diagnosis(settings: Settings, missing: set[str], killed_at: float
                              ) -> dict[str, object]:
    """Where customers without a task went missing: in the state changelog (never
    written), or after it (a worker that did not recover or use their state)."""
    if not missing:
        return {}
    topic = changelog_topics(settings)[0]  # the customers table's
    reader = await OutputReader(settings.bootstrap, [topic]).start()
    try:
        await reader.settle(quiet=3.0)
    finally:
        await reader.stop()
    logged: dict[str, list[tuple[int, int, float]]] = {}
    ends: dict[int, int] = {}
    for r in reader.records[topic]:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        customer = json.loads(r.key) if r.key is not None else None
        if customer in missing:
            logged.setdefault(customer, []).append(
                (r.partition, r.offset, round((r.timestamp_ms or 0) / 1000 - killed_at, 2)))
    return {"missing_ids": sorted(missing)[:10],
            "missing_in_changelog": len(missing - set(logged)),
            # (partition, offset, seconds after the kill) of their changelog records
            "missing_at": [logged[c] for c in sorted(logged)[:5]],
            "changelog_ends": dict(sorted(ends.items()))}


async def fan_out_with_kills(broker: str, tmp_path: Path, publisher: Publisher, workers: int,
                             test: str) -> None:
    settings = worker_settings(broker, tmp_path, partitions=PARTITIONS)
    names = TopicNames(settings.topic_prefix)
    procs = []
    for i in range(workers):
        s = worker_settings(broker, tmp_path / f"w{i}", partitions=PARTITIONS,
                            topic_prefix=settings.topic_prefix)
        procs.append(WorkerProcess(s, tmp_path / f"worker{i}.log").start())
    committed = await OutputReader(settings.bootstrap, names.outputs()).start()
    uncommitted = await OutputReader(settings.bootstrap, [names.sms, names.email],
                                     isolation_level="read_uncommitted").start()
    try:
        tag = f"K{test[:1]}"
        events = population(tag, CUSTOMERS)
        await publisher.send_many(names.cancellations, events)
        await committed.wait_for(lambda: len(committed.records[names.decisions]) >= CUSTOMERS,
                                 timeout=300, what="decisions")
        await publisher.send(names.deadlines, {"event_id": f"{tag}-r1", "kind": "guidance_round",
                                               "round": 1, "at": "2026-01-21T10:00:00+09:00"})

        def tasks_seen() -> int:
            return len(uncommitted.records[names.sms]) + len(uncommitted.records[names.email])

        await uncommitted.wait_for(lambda: tasks_seen() >= CUSTOMERS // 10, timeout=120,
                                   what="the fan-out to start")
        victim = procs[0]
        victim.kill()
        at_kill = tasks_seen()
        killed_at, killed_wall = time.monotonic(), time.time()
        assert at_kill < CUSTOMERS, "the fan-out finished before the kill: nothing was tested"
        if workers == 1:
            victim.start()  # restarted, as a supervisor would
        progress_needed = set(range(PARTITIONS))

        def round_done() -> bool:
            done = {p["partition"] for p in committed.values(names.round_progress)}
            return done == progress_needed

        await committed.wait_for(round_done, timeout=300, what="the round on every partition")
        recovered_in = time.monotonic() - killed_at
        await committed.settle(quiet=3.0)
        tasks = committed.values(names.sms) + committed.values(names.email)
        counts = Counter(t["notification_id"] for t in tasks)
        expected = {(e["customer_id"], 1) for e in events}
        got = {(t["customer_id"], t["round"]) for t in tasks}
        duplicates = sum(n - 1 for n in counts.values())
        missing = len(expected - got)
        diagnosis = await changelog_diagnosis(settings, {c for c, _ in expected - got},
                                              killed_wall)
        record(test, customers=CUSTOMERS, workers=workers, kills=1,
               tasks_visible_at_kill=at_kill, tasks_committed=len(tasks),
               duplicates=duplicates, missing=missing, unexpected=len(got - expected),
               seconds_to_finish_after_kill=round(recovered_in, 1), **diagnosis)
        assert missing == 0, diagnosis
        assert got == expected
        if GUARANTEE == "exactly_once":
            assert duplicates == 0
    finally:
        await committed.stop()
        await uncommitted.stop()
        for proc in procs:
            proc.stop()


async def test_sigkill_mid_round_then_restart(broker: str, tmp_path: Path,
                                              publisher: Publisher) -> None:
    await fan_out_with_kills(broker, tmp_path, publisher, workers=1, test="kill-restart")


async def test_two_workers_one_killed_mid_round(broker: str, tmp_path: Path,
                                                publisher: Publisher) -> None:
    await fan_out_with_kills(broker, tmp_path, publisher, workers=2, test="kill-takeover")


