"""librdkafka clients against the brokers the project starts: kcat (the command-line
client) and confluent-kafka (Python), the client family of Go, .NET and Node too.

Upstream systems publish keyed events with them (their default partitioner is crc32,
not Kafka's murmur2, so most events arrive off their customer's partition and are
moved), and gateways read decisions and tasks with them, read_committed.
"""

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from streams.runner import WorkerProcess
from streams.topics import TopicNames
from tests.conftest import worker_settings
from tests.factories import cancellation_dict

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CUSTOMERS = 12  # per client


@pytest.fixture(scope="module")
def client_worker(broker: str, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[WorkerProcess]:
    """A worker of its own: the test fires a round, which must reach only its customers."""
    folder = tmp_path_factory.mktemp("clients")
    process = WorkerProcess(worker_settings(broker, folder), folder / "worker.log").start()
    yield process
    process.stop()


def kcat(broker: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["kcat", "-b", broker, "-X", "isolation.level=read_committed",
                           *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def kcat_values(broker: str, topic: str) -> list[dict[str, Any]]:
    """Every record of `topic` so far, read with kcat to the end of each partition."""
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Gateway:
    """A confluent-kafka consumer group member reading output topics read_committed."""

    def __init__(self, broker: str, topics: list[str], group: str) -> None:
        # tansu's first group join waits half the session timeout
        self.consumer = Consumer({"bootstrap.servers": broker, "group.id": group,
                                  "auto.offset.reset": "earliest",
                                  "isolation.level": "read_committed",
                                  "session.timeout.ms": 6000})
        self.consumer.subscribe(topics)
        self.values: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}

    def poll_until(self, done: Any, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "timed out reading with confluent-kafka"
            msg = self.consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                self.values[msg.topic()].append(json.loads(msg.value()))

    def close(self) -> None:
        self.consumer.close()


def mine(values: list[dict[str, Any]], tag: str) -> set[str]:
    return {v["customer_id"] for v in values if v.get("customer_id", "").startswith(tag)}


async def test_librdkafka_clients_publish_events_and_read_decisions_and_tasks(
        client_worker: WorkerProcess, tag: str) -> None:
    broker = client_worker.settings.bootstrap
    names = TopicNames(client_worker.settings.topic_prefix)
    by_kcat = [cancellation_dict(f"{tag}-k{i}", contact={"name": "김민수",
                                                        "phone": f"010-3000-{i:04d}"})
               for i in range(CUSTOMERS)]
    by_confluent = [cancellation_dict(f"{tag}-c{i}", contact={"name": "이영희",
                                                             "phone": f"010-4000-{i:04d}"})
                    for i in range(CUSTOMERS)]
    lines = "".join(f"{e['customer_id']}\t{json.dumps(e, ensure_ascii=False)}\n"
                    for e in by_kcat)
    kcat(broker, "-P", "-t", names.cancellations, "-K", "\t", stdin=lines)
    producer = Producer({"bootstrap.servers": broker})
    for event in by_confluent:
        producer.produce(names.cancellations, json.dumps(event).encode(),
                         key=event["customer_id"].encode())
    assert producer.flush(30) == 0
    everyone = {e["customer_id"] for e in [*by_kcat, *by_confluent]}

    gateway = Gateway(broker, [names.decisions, names.sms], f"{tag}-gateway")
    try:
        await asyncio.to_thread(gateway.poll_until, lambda: mine(
            gateway.values[names.decisions], tag) == everyone)
        assert mine(kcat_values(broker, names.decisions), tag) == everyone

        producer.produce(names.deadlines, json.dumps(
            {"event_id": f"{tag}-round-1", "kind": "guidance_round", "round": 1,
             "at": "2026-01-21T10:00:00+09:00"}).encode())
        assert producer.flush(30) == 0
        await asyncio.to_thread(gateway.poll_until, lambda: mine(
            gateway.values[names.sms], tag) == everyone)
        tasks = [t for t in kcat_values(broker, names.sms)
                 if t["customer_id"].startswith(tag)]
        assert {t["customer_id"] for t in tasks} == everyone
        assert {t["round"] for t in tasks} == {1} and len(tasks) == len(everyone)
    finally:
        gateway.close()
