"""What the crash tests share: workers started as a user starts them, readers of every
output topic, and the audit of what those topics hold after the crashes.

An audit counts, on every output topic, the records expected and never committed
(`lost`), the extra copies (`duplicates`) and the records nobody asked for
(`unexpected`). A gap is the longest stretch without a new committed output while
work was still due: from a worker's ready line, or from a kill that another worker
covers, to the end of that work.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from rules.messages import notification_id
from streams.reader import OutputReader, Record
from streams.runner import WorkerProcess
from streams.settings import Settings
from streams.topics import TopicNames
from tests.conftest import worker_settings
from tests.factories import cancellation_dict

# What identifies one output record: a redelivery or a crash must never add a second.
IDENTITY: dict[str, Callable[[dict[str, Any]], Any]] = {
    "decisions": lambda v: v["source_event_id"],
    "refunds": lambda v: v["application_event_id"],
    "sms": lambda v: v["notification_id"],
    "email": lambda v: v["notification_id"],
    "rewards": lambda v: (v["customer_id"], v["reward"]),
    "reward_choice_results": lambda v: v["choice_event_id"],
    "dead_letter": lambda v: (v["source_topic"], v["partition"], v["offset"]),
    "round_progress": lambda v: (v["event_id"], v["partition"], v["repeat"]),
}


def population(tag: str, n: int) -> list[dict[str, Any]]:
    """Eligible customers, half reachable by SMS only, half by e-mail only."""
    events = []
    for i in range(n):
        contact = ({"name": "홍길동", "phone": f"010-2000-{i % 10000:04d}", "email": None}
                   if i % 2 else {"name": "홍길동", "phone": None, "email": f"k{i}@example.com"})
        events.append(cancellation_dict(f"{tag}{i:06d}", contact=contact, event_id=f"{tag}-c{i}"))
    return events


def round_expected(events: list[dict[str, Any]], round_no: int, event_id: str,
                   partitions: int) -> dict[str, set[Any]]:
    """What a guidance round over these eligible customers must write."""
    tasks = {notification_id(e["customer_id"], round_no) for e in events}
    phone = {notification_id(e["customer_id"], round_no) for e in events
             if e["contact"]["phone"]}
    return {"sms": phone, "email": tasks - phone,
            "round_progress": {(event_id, p, False) for p in range(partitions)}}


def audit(reader: OutputReader, names: TopicNames, expected: dict[str, set[Any]]
          ) -> dict[str, dict[str, int]]:
    """Per output topic: lost, duplicates and unexpected records."""
    figures = {}
    for attr, identity in IDENTITY.items():
        topic = getattr(names, attr)
        counts = Counter(identity(value) for value in reader.values(topic))
        want = expected.get(attr, set())
        figures[attr] = {"records": sum(counts.values()), "lost": len(want - set(counts)),
                         "duplicates": sum(n - 1 for n in counts.values()),
                         "unexpected": len(set(counts) - want)}
    return figures


def totals(figures: dict[str, dict[str, int]]) -> dict[str, int]:
    return {k: sum(t[k] for t in figures.values()) for k in ("lost", "duplicates",
                                                             "unexpected")}


def longest_gap(records: Iterable[Record], since: float, until: float) -> float:
    """The longest time in [since, until] without a record arriving."""
    moments = sorted(r.arrived for r in records if since <= r.arrived <= until)
    points = [since, *moments, until]
    return max(b - a for a, b in pairwise(points))


@dataclass
class Pipeline:
    """Workers of one pipeline (topic prefix) on one broker, each with its data folder."""

    broker: str
    folder: Path
    workers: int = 1
    partitions: int = 4
    settings: Settings = field(init=False)
    procs: list[WorkerProcess] = field(init=False)

    def __post_init__(self) -> None:
        self.settings = worker_settings(self.broker, self.folder, partitions=self.partitions)
        self.procs = [self._process(i, self.folder / f"w{i}") for i in range(self.workers)]

    def _process(self, i: int, data: Path) -> WorkerProcess:
        settings = worker_settings(self.broker, data, partitions=self.partitions,
                                   topic_prefix=self.settings.topic_prefix)
        return WorkerProcess(settings, self.folder / f"worker{i}.log")

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.settings.topic_prefix)

    async def start(self, i: int) -> float:
        """Start worker `i`; the moment of its ready line."""
        await asyncio.to_thread(self.procs[i].start)
        return time.monotonic()

    def replace(self, i: int, data: Path) -> None:
        """Worker `i` on another machine from now on: a data folder of its own, empty."""
        self.procs[i] = self._process(i, data)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


async def wait_for_log(proc: WorkerProcess, text: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log_text():
        if not proc.running or time.monotonic() > deadline:
            raise TimeoutError(f"no {text!r} in the worker's log:\n{proc.log_text()[-3000:]}")
        await asyncio.sleep(0.05)
