"""Shared fixtures: one broker and one worker per test session; each test uses its own customers.

The broker is the embedded tansu broker unless `WAIVER_TEST_BROKER` says
otherwise: `kafka` (Apache Kafka in KRaft mode, downloaded and started here)
or `HOST:PORT` (an external broker you run).
"""

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from brokers.tansu import embedded_broker, free_port
from streams.reader import OutputReader
from streams.runner import WorkerProcess
from streams.settings import Settings
from streams.topics import TopicNames

PARTITIONS = 4
API_TOKEN = "test-" + uuid.uuid4().hex
BROKER = os.environ.get("WAIVER_TEST_BROKER", "tansu")
# Workers run with the default guarantee (auto) unless WAIVER_TEST_GUARANTEE says
# otherwise: exactly-once where the broker has transactions (Apache Kafka), at-least-once
# where it has not (tansu). GUARANTEE is the one they run.
ASKED_GUARANTEE = os.environ.get("WAIVER_TEST_GUARANTEE")
GUARANTEE = ASKED_GUARANTEE or ("at_least_once" if BROKER == "tansu" else "exactly_once")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    choice = BROKER
    folder = tmp_path_factory.mktemp("broker")
    if choice == "tansu":
        with embedded_broker(log_file=folder / "tansu.log") as bootstrap:
            yield bootstrap
    elif choice == "kafka":
        from brokers.apache_kafka import KafkaServer

        with KafkaServer(folder / "kafka") as server:
            yield server.bootstrap
    else:
        yield choice


def worker_settings(broker: str, folder: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "broker": f"kafka://{broker}",
        "topic_prefix": f"it-{uuid.uuid4().hex[:8]}.",
        "partitions": PARTITIONS,
        "session_timeout": 6.0,
        "web_port": free_port(),
        "data_dir": str(folder / "data"),
        "log_level": "info",
        "processing_guarantee": ASKED_GUARANTEE or "auto",
        "api_token": API_TOKEN,
        # Every round through a pool process, as large rounds run in production.
        "round_processes": 1,
        "round_pool_min": 1,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return worker_settings(broker, tmp_path_factory.mktemp("worker"))


@pytest.fixture(scope="session")
def names(settings: Settings) -> TopicNames:
    return TopicNames(settings.topic_prefix)


@pytest.fixture(scope="session")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[WorkerProcess]:
    process = WorkerProcess(settings, tmp_path_factory.mktemp("logs") / "worker.log").start()
    yield process
    process.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def outputs(worker: WorkerProcess, names: TopicNames) -> AsyncIterator[OutputReader]:
    reader = await OutputReader(worker.settings.bootstrap, names.outputs()).start()
    yield reader
    await reader.stop()


class Publisher:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send(self, topic: str, value: Any, key: Any = ...,
                   partition: int | None = None) -> None:
        """Publish a dict as JSON (or raw bytes); the key defaults to its customer_id."""
        raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
        if key is ...:
            key = value.get("customer_id") if isinstance(value, dict) else None
        if isinstance(key, str):
            key = key.encode()
        await self.producer.send_and_wait(topic, raw, key=key, partition=partition)

    async def send_all(self, topic: str, values: list[Any]) -> None:
        for value in values:
            await self.send(topic, value)

    async def send_many(self, topic: str, values: list[dict[str, Any]]) -> list[Any]:
        """Pipelined publish keyed by customer_id; returns each record's metadata."""
        futures = [await self.producer.send(topic, json.dumps(v, ensure_ascii=False).encode(),
                                            key=v["customer_id"].encode()) for v in values]
        return [await f for f in futures]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def publisher(broker: str) -> AsyncIterator[Publisher]:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all",
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    yield Publisher(producer)
    await producer.stop()


@pytest.fixture
def tag() -> str:
    """A prefix for this test's customer ids, so tests never share a customer."""
    return "T" + uuid.uuid4().hex[:8]
