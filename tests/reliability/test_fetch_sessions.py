"""Incremental fetch sessions (streams/fetch_sessions.py) against Apache Kafka: a
consumer of 9 topics of 8 partitions, most of them idle, reads every record once and
in order, through a pause, a resume and a seek back, while its requests name only the
partitions that changed. The worker runs with the same patch in the other reliability
tests (kills, takeovers, a broker restart, which loses the sessions)."""

import asyncio
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient

from streams import fetch_sessions
from tests.conftest import BROKER

pytestmark = [
    pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(300),
    pytest.mark.skipif(BROKER != "kafka", reason="tansu keeps no fetch sessions: run with "
                       "WAIVER_TEST_BROKER=kafka"),
]

RECORDS = 3000


async def test_a_session_consumer_reads_everything_once_in_order(
        broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch_sessions.install()
    sent = {"fetches": 0, "named": 0, "in_response": 0, "sessions": 0}
    send = AIOKafkaClient.send

    async def counting(self: AIOKafkaClient, node_id: int, request: Any, *args: Any,
                       **kwargs: Any) -> Any:
        response = await send(self, node_id, request, *args, **kwargs)
        if isinstance(request, fetch_sessions.SessionFetchRequest):
            sent["fetches"] += 1
            sent["named"] += sum(len(parts) for _, parts in request._topics)
            sent["in_response"] += sum(len(parts) for _, parts in response.topics)
            sent["sessions"] += bool(response.session_id)
        return response

    monkeypatch.setattr(AIOKafkaClient, "send", counting)
    topics = [f"fs-{uuid.uuid4().hex[:8]}-{i}" for i in range(9)]
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 8, 1) for t in topics])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=broker, group_id=topics[0],
                                auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await producer.start()
    await consumer.start()
    seen: dict[TopicPartition, list[int]] = defaultdict(list)
    paused, rewound = TopicPartition(topics[0], 0), TopicPartition(topics[1], 1)
    try:
        async def produce() -> None:
            for i in range(RECORDS):  # 3 of the 9 topics get records, a few at a time
                await producer.send(topics[i % 3], str(i).encode(), partition=i % 8)
                if i % 10 == 0:
                    await asyncio.sleep(0.01)

        async def consume() -> None:
            deadline, step = time.monotonic() + 120, 0
            while sum(map(len, seen.values())) < RECORDS and time.monotonic() < deadline:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    seen[tp].extend(int(r.value) for r in records)
                got = sum(map(len, seen.values()))
                if step == 0 and got > RECORDS // 3:
                    consumer.pause(paused)
                    step = 1
                elif step == 1 and got > RECORDS // 2:
                    consumer.resume(paused)
                    # rewound's records again from its start: the session must fetch
                    # at the new position, not where the broker had it
                    seen[rewound].clear()
                    consumer.seek(rewound, 0)
                    step = 2

        await asyncio.gather(produce(), consume())
    finally:
        await consumer.stop()
        await producer.stop()
    values = sorted(v for records in seen.values() for v in records)
    assert values == list(range(RECORDS))  # none lost, none twice
    assert all(records == sorted(records) for records in seen.values())
    # In a session: after the first full fetch of all 72 partitions, a request names
    # and a response lists only some of the 24 that get records (72 each without)
    assert sent["sessions"] > 0.9 * sent["fetches"]
    assert sent["named"] <= 72 + 24 * sent["fetches"]
    assert sent["in_response"] <= 72 + 24 * sent["fetches"]
