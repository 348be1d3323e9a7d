"""Apache Kafka stopped and started on the same data directory while events flow,
then the worker killed and restarted.

The worker rides through the outage; afterwards no output topic holds a record lost,
twice or unasked for; output resumes within 10 seconds of the broker's return and of
the restarted worker's ready line; and the restarted worker, on its local state,
neither decides again nor sends a round again.
"""

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from brokers.apache_kafka import KafkaServer
from streams.admin import ensure_topics
from streams.reader import OutputReader
from tests.conftest import BROKER, GUARANTEE
from tests.factories import application_dict
from tests.reliability.crash import (
    Pipeline,
    audit,
    longest_gap,
    population,
    round_expected,
    totals,
)
from tests.reliability.figures import record

pytestmark = [
    pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(900),
    pytest.mark.skipif(BROKER != "kafka", reason="needs a broker that keeps its data across "
                       "a restart: run with WAIVER_TEST_BROKER=kafka"),
]

CUSTOMERS = int(os.environ.get("WAIVER_CRASH_CUSTOMERS", "20000"))
RESUME_WITHIN = 10.0
CHUNK = 100  # events per produce round trip, about 2,000 events/s with the pause


async def publish_through_outage(bootstrap: str, topic: str, events: list[dict[str, Any]],
                                 stats: Counter) -> None:
    """Publish the events, a chunk at a time, each chunk again until the broker takes
    all of it, through the outage.

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
        for start in range(0, len(events), CHUNK):
            chunk = events[start:start + CHUNK]
            while True:
                try:
                    sent = [await producer.send(topic, json.dumps(e).encode(),
                                                key=e["customer_id"].encode()) for e in chunk]
                    await asyncio.gather(*sent)
                    stats["published"] += len(chunk)
                    break
                except KafkaError:
                    stats["retries"] += 1
                    await producer.stop()
                    await asyncio.sleep(0.5)
                    producer = await connect()
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()


def deadline(event_id: str, round_no: int) -> dict[str, Any]:
    return {"event_id": event_id, "kind": "guidance_round", "round": round_no,
            "at": "2026-01-21T10:00:00+09:00", "customer_id": "-"}


async def test_broker_restart_while_events_flow(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path / "kafka")
    await asyncio.to_thread(server.start)
    pipeline = Pipeline(server.bootstrap, tmp_path)
    names = pipeline.names
    reader: OutputReader | None = None
    try:
        await ensure_topics(pipeline.settings)
        await pipeline.start(0)
        cancellations = population("B", CUSTOMERS)
        applicants = cancellations[::3]
        applications = [application_dict(c["customer_id"], event_id=f"b-a{i}")
                        for i, c in enumerate(applicants)]
        stats: Counter = Counter()
        flow = asyncio.gather(
            publish_through_outage(server.bootstrap, names.cancellations, cancellations, stats),
            publish_through_outage(server.bootstrap, names.applications, applications, stats))
        while stats["published"] < len(cancellations) // 3:
            await asyncio.sleep(0.05)
        restart_started = time.monotonic()
        await asyncio.to_thread(server.restart)
        back = time.monotonic()
        published_at_restart = stats["published"]
        reader = await OutputReader(server.bootstrap, names.outputs()).start()
        outputs = reader

        def records() -> list[Any]:
            return [r for topic in names.outputs() for r in outputs.records[topic]]

        def count(topic: str) -> int:
            return len(outputs.records[topic])

        def round_done(event_id: str) -> bool:
            return {p["partition"] for p in outputs.values(
                names.round_progress, lambda v: v["event_id"] == event_id)} == {0, 1, 2, 3}

        await flow
        assert published_at_restart < len(cancellations) + len(applications)
        await reader.wait_for(lambda: count(names.decisions) >= CUSTOMERS
                              and count(names.refunds) >= len(applications),
                              timeout=300, what="every decision and refund")
        gaps = {"after broker restart": longest_gap(records(), back, time.monotonic())}
        assert pipeline.procs[0].running, "the worker died in the broker outage"
        await publish_through_outage(server.bootstrap, names.deadlines,
                                     [deadline("b-round-1", 1)], stats)
        await reader.wait_for(lambda: round_done("b-round-1"), timeout=120, what="round 1")

        # Restarted on its local state, the worker neither decides nor sends again.
        pipeline.procs[0].kill()
        ready = await pipeline.start(0)
        await publish_through_outage(server.bootstrap, names.cancellations, cancellations[:300],
                                     stats)
        for event_id, round_no in (("b-round-1-again", 1), ("b-round-2", 2)):
            await publish_through_outage(server.bootstrap, names.deadlines,
                                         [deadline(event_id, round_no)], stats)
        await reader.wait_for(lambda: round_done("b-round-1-again") and round_done("b-round-2"),
                              timeout=180, what="the deadlines after the worker's restart")
        gaps["after worker restart"] = longest_gap(records(), ready, time.monotonic())
        await reader.settle(quiet=3.0)

        due = [c for c in cancellations if c not in applicants]
        first, second = (round_expected(due, n, f"b-round-{n}", 4) for n in (1, 2))
        expected = {
            "decisions": {c["event_id"] for c in cancellations},
            "refunds": {a["event_id"] for a in applications},
            "sms": first["sms"] | second["sms"], "email": first["email"] | second["email"],
            "round_progress": first["round_progress"] | second["round_progress"]
            | {("b-round-1-again", p, True) for p in range(4)},
        }
        by_topic = audit(reader, names, expected)
        sums = totals(by_topic)
        record("broker-restart", customers=CUSTOMERS, applications=len(applications),
               broker_restarts=1, worker_kills=1,
               outage_seconds=round(back - restart_started, 1),
               publish_retries=stats["retries"], **sums,
               longest_gap_seconds=round(max(gaps.values()), 2),
               gaps={k: round(v, 2) for k, v in gaps.items()},
               per_topic={k: v for k, v in by_topic.items() if v["records"]})
        assert sums["lost"] == 0 and sums["unexpected"] == 0, by_topic
        assert {r["status"] for r in reader.values(names.refunds)} == {"scheduled"}
        if GUARANTEE == "exactly_once":
            assert sums["duplicates"] == 0, by_topic
        assert max(gaps.values()) <= RESUME_WITHIN, gaps
    finally:
        if reader is not None:
            await reader.stop()
        await asyncio.to_thread(pipeline.stop)
        await asyncio.to_thread(server.stop)
