"""Publishing events to the input topics (CLI, demo and tests share this)."""

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer


def key_of(line: bytes) -> bytes | None:
    """The contract's key: the event's customer_id, when it has one."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("customer_id"), str):
        return value["customer_id"].encode()
    return None


async def publish_lines(bootstrap: str, topic: str, lines: Iterable[bytes],
                        **client_options: Any) -> int:
    """Publish each line as one message keyed by its customer_id; returns the count."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_request_size=8 * 1024 * 1024, **client_options)
    await producer.start()
    count = 0
    try:
        batch = []
        for line in lines:
            batch.append(await producer.send(topic, value=line, key=key_of(line)))
            count += 1
        for future in batch:
            await future
    finally:
        await producer.stop()
    return count


def deadline_event(round_no: int, at: datetime, event_id: str | None = None) -> bytes:
    return json.dumps({"event_id": event_id or f"d-round-{round_no}", "kind": "guidance_round",
                       "round": round_no, "at": at.isoformat()}).encode()
