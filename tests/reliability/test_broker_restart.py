"""Apache Kafka stopped and started on the same data directory while events flow.

The worker rides through the outage; afterwards no decision, refund or task is
lost or duplicated, and a restarted worker rebuilds its tables from the
changelogs (it neither decides again nor sends a round again).
"""

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from brokers.apache_kafka import KafkaServer
from streams.reader import OutputReader
from streams.runner import WorkerProcess
from streams.topics import TopicNames
from tests.conftest import BROKER, GUARANTEE, worker_settings
from tests.factories import application_dict, cancellation_dict
from tests.reliability.figures import record

pytestmark = [
    pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(900),
    pytest.mark.skipif(BROKER != "kafka", reason="needs a broker that keeps its data across "
                       "a restart: run with WAIVER_TEST_BROKER=kafka"),
]

CUSTOMERS = 3000


async def publish_through_outage(bootstrap: str, topic: str, events: list[dict],
                                 stats: Counter) -> None:
    """Publish each event until the broker takes it, retrying through the outage.

    A retry may deliver an event twice (same event_id), as upstream systems do; a
    fresh producer per retry avoids aiokafka's idempotent-sequence errors after the
    broker lost its in-flight requests."""

    async def connect() -> AIOKafkaProducer:
        while True:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                        request_timeout_ms=5000)
            try:
                await producer.start()
                return producer
            except KafkaError:
                await producer.stop()
                await asyncio.sleep(0.5)

    producer = await connect()
    try:
        for event in events:
            while True:
                try:
                    await producer.send_and_wait(topic, json.dumps(event).encode(),
                                                 key=event["customer_id"].encode())
                    stats["published"] += 1
                    break
                except KafkaError:
                    stats["retries"] += 1
                    await producer.stop()
                    await asyncio.sleep(0.5)
                    producer = await connect()
            await asyncio.sleep(0.002)
    finally:
        await producer.stop()


async def test_broker_restart_while_events_flow(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path / "kafka")
    await asyncio.to_thread(server.start)
    settings = worker_settings(server.bootstrap, tmp_path, partitions=4)
    names = TopicNames(settings.topic_prefix)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    reader: OutputReader | None = None
    try:
        cancellations = [cancellation_dict(f"B{i:05d}", event_id=f"b-c{i}")
                         for i in range(CUSTOMERS)]
        applications = [application_dict(f"B{i:05d}", event_id=f"b-a{i}")
                        for i in range(0, CUSTOMERS, 3)]
        stats: Counter = Counter()
        flow = asyncio.gather(
            publish_through_outage(server.bootstrap, names.cancellations, cancellations, stats),
            publish_through_outage(server.bootstrap, names.applications, applications, stats))
        while stats["published"] < len(cancellations) // 3:
            await asyncio.sleep(0.1)
        restart_started = time.monotonic()
        await asyncio.to_thread(server.restart)
        outage = time.monotonic() - restart_started
        published_at_restart = stats["published"]
        await flow
        assert published_at_restart < len(cancellations) + len(applications)
        reader = await OutputReader(server.bootstrap, names.outputs()).start()

        def count(topic: str, field: str) -> Counter:
            return Counter(v[field] for v in reader.values(topic))

        await reader.wait_for(
            lambda: len(count(names.decisions, "source_event_id")) == CUSTOMERS
            and len(count(names.refunds, "application_event_id")) == len(applications),
            timeout=300, what="every decision and refund after the broker restart")
        assert worker.running, "the worker died in the broker outage"
        deadline = {"event_id": "b-round-1", "kind": "guidance_round", "round": 1,
                    "at": "2026-01-21T10:00:00+09:00"}
        await publish_through_outage(server.bootstrap, names.deadlines,
                                     [dict(deadline, customer_id="-")], stats)
        await reader.wait_for(lambda: len({p["partition"] for p in reader.values(
            names.round_progress)}) == 4, timeout=120, what="round 1")

        # A worker that starts afresh must rebuild its state from the changelogs.
        worker.kill()
        worker.start()
        await publish_through_outage(server.bootstrap, names.cancellations, cancellations[:300],
                                     stats)
        for event_id, round_no in (("b-round-1-again", 1), ("b-round-2", 2)):
            await publish_through_outage(
                server.bootstrap, names.deadlines,
                [dict(deadline, event_id=event_id, round=round_no, customer_id="-")], stats)
            await reader.wait_for(lambda e=event_id: len({p["partition"] for p in reader.values(
                names.round_progress, lambda v: v["event_id"] == e)}) == 4,
                timeout=180, what=f"deadline {event_id}")
        await reader.settle(quiet=3.0)

        decisions = count(names.decisions, "source_event_id")
        refunds = count(names.refunds, "application_event_id")
        tasks = reader.values(names.sms) + reader.values(names.email)
        by_id = Counter(t["notification_id"] for t in tasks)
        applicants = {a["customer_id"] for a in applications}
        due = {c["customer_id"] for c in cancellations} - applicants
        duplicates = (sum(n - 1 for n in decisions.values())
                      + sum(n - 1 for n in refunds.values())
                      + sum(n - 1 for n in by_id.values()))
        got = {(t["customer_id"], t["round"]) for t in tasks}
        expected = {(c, r) for c in due for r in (1, 2)}
        record("broker-restart", customers=CUSTOMERS, applications=len(applications),
               broker_restarts=1, worker_kills=1, outage_seconds=round(outage, 1),
               publish_retries=stats["retries"], duplicates=duplicates,
               missing=len(expected - got) + CUSTOMERS - len(decisions)
               + len(applications) - len(refunds))
        assert set(decisions.values()) == {1} and len(decisions) == CUSTOMERS
        assert set(refunds.values()) == {1} and len(refunds) == len(applications)
        assert {r["status"] for r in reader.values(names.refunds)} == {"scheduled"}
        assert got == expected
        if GUARANTEE == "exactly_once":
            assert set(by_id.values()) == {1}
    finally:
        if reader is not None:
            await reader.stop()
        worker.stop()
        await asyncio.to_thread(server.stop)
