"""Publishing events to the input topics (CLI, demo and tests share this)."""

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from schemas.events import (
    Application,
    Cancellation,
    Deadline,
    DeliveryReceipt,
    RewardChoice,
    Subscriber,
)
from streams.codec import BadMessage, parse
from streams.topics import TopicNames

# The input topics by the short names the CLI takes, with the schema of their events.
INPUTS: dict[str, tuple[str, type[BaseModel]]] = {
    "cancellations": ("cancellations", Cancellation),
    "applications": ("applications", Application),
    "deadlines": ("deadlines", Deadline),
    "subscribers": ("subscribers", Subscriber),
    "reward-choices": ("reward_choices", RewardChoice),
    "delivery-receipts": ("delivery_receipts", DeliveryReceipt),
}


def input_topic(names: TopicNames, short: str) -> tuple[str, type[BaseModel]]:
    """The full topic name and event schema of an input topic's short name."""
    attr, model = INPUTS[short]
    return getattr(names, attr), model


@dataclass
class Checked:
    good: list[bytes] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, problem)


def check_lines(lines: Iterable[bytes], model: type[BaseModel],
                also: Callable[[Any], str | None] = lambda event: None) -> Checked:
    """Each non-blank line parsed against `model` (and `also`, which names a problem of
    a parsed event or returns None); numbered from 1 as in the file."""
    checked = Checked()
    for number, line in enumerate(lines, 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            problem = also(parse(model, line))
        except BadMessage as exc:
            problem = str(exc)
        if problem is None:
            checked.good.append(line)
        else:
            checked.bad.append((number, problem))
    return checked


def key_of(line: bytes) -> bytes | None:
    """The contract's key: the event's customer_id, when it has one."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("customer_id"), str):
        return value["customer_id"].encode()
    return None


class Progress:
    """A progress bar on standard error, for inputs of `threshold` lines or more."""

    def __init__(self, total: int, threshold: int = 20000) -> None:
        self.total, self.shown = total, total >= threshold
        self.step = max(total // 100, 1)

    def __call__(self, done: int) -> None:
        if self.shown and (done % self.step == 0 or done == self.total):
            filled = done * 30 // self.total
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done:,}/{self.total:,}",
                  end="\n" if done == self.total else "", file=sys.stderr, flush=True)


async def publish_lines(bootstrap: str, topic: str, lines: Iterable[bytes],
                        progress: Callable[[int], None] = lambda done: None,
                        partition: int | None = None, **client_options: Any) -> int:
    """Publish each line as one message keyed by its customer_id (to `partition`, if
    given); returns the count."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_request_size=8 * 1024 * 1024, **client_options)
    count = 0
    try:
        await producer.start()
        batch = []
        for line in lines:
            batch.append(await producer.send(topic, value=line, key=key_of(line),
                                             partition=partition))
            count += 1
            if len(batch) >= 10000:  # bounded memory on large files
                for future in batch:
                    await future
                batch.clear()
            progress(count)
        for future in batch:
            await future
    finally:
        await producer.stop()
    return count


def deadline_event(kind: str, at: datetime, round_no: int | None = None,
                   event_id: str | None = None) -> bytes:
    default_id = f"d-round-{round_no}" if kind == "guidance_round" else "d-reward-notice"
    return json.dumps({"event_id": event_id or default_id, "kind": kind,
                       **({"round": round_no} if round_no is not None else {}),
                       "at": at.isoformat()}).encode()
