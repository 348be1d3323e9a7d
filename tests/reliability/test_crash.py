"""Workers killed with SIGKILL: in the middle of the ingest, of a guidance round, of
their own recovery, and one of two workers with the other taking over.

The workers run as a user runs them, with the default guarantee (auto): on Apache
Kafka that is exactly-once, and every output topic then holds each expected record
exactly once, whatever was killed when; output resumes within 10 seconds of the
restarted worker's ready line. On a broker without transactions (tansu) nothing is
lost, and repeats carry the same identity and are counted.
"""

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from streams.admin import ensure_topics
from streams.reader import OutputReader
from tests.conftest import GUARANTEE, Publisher
from tests.reliability.crash import (
    Pipeline,
    audit,
    longest_gap,
    population,
    round_expected,
    totals,
    wait_for_log,
)
from tests.reliability.figures import record

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(900)]

CUSTOMERS = int(os.environ.get("WAIVER_CRASH_CUSTOMERS", "20000"))
RESUME_WITHIN = 10.0  # seconds from a restarted worker's ready line to output again
ROUND_1 = {"kind": "guidance_round", "round": 1, "at": "2026-01-21T10:00:00+09:00"}


class Run:
    """One test's pipeline, its outputs read committed (and, to time the kills,
    uncommitted), and the gaps measured after each restart."""

    def __init__(self, pipeline: Pipeline, publisher: Publisher) -> None:
        self.pipeline = pipeline
        self.names = pipeline.names
        self.publisher = publisher
        self.gaps: list[float] = []

    async def __aenter__(self) -> "Run":
        names = self.names
        # As the worker creates them: a reader first would have the broker auto-create
        # the output topics with one partition.
        await ensure_topics(self.pipeline.settings)
        self.committed = await OutputReader(self.pipeline.settings.bootstrap,
                                            names.outputs()).start()
        self.uncommitted = await OutputReader(
            self.pipeline.settings.bootstrap, [names.decisions, names.sms, names.email],
            isolation_level="read_uncommitted").start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.committed.stop()
        await self.uncommitted.stop()
        await asyncio.to_thread(self.pipeline.stop)

    def seen(self, *topics: str) -> int:
        return sum(len(self.uncommitted.records[t]) for t in topics)

    def committed_records(self) -> list[Any]:
        return [r for topic in self.names.outputs() for r in self.committed.records[topic]]

    async def kill_when(self, worker: int, condition: Any, what: str) -> float:
        await self.uncommitted.wait_for(condition, timeout=180, what=what)
        self.pipeline.procs[worker].kill()
        return time.monotonic()

    async def until(self, condition: Any, since: float, what: str) -> float:
        """Wait for `condition`; record the longest gap in committed output since
        `since`; return that gap."""
        await self.committed.wait_for(condition, timeout=300, what=what)
        gap = longest_gap(self.committed_records(), since, time.monotonic())
        self.gaps.append(round(gap, 2))
        return gap

    def decided(self, n: int) -> bool:
        return len(self.committed.records[self.names.decisions]) >= n

    def round_done(self, event_id: str) -> bool:
        done = {p["partition"] for p in self.committed.values(self.names.round_progress)
                if p["event_id"] == event_id}
        return done == set(range(self.pipeline.partitions))

    async def deadline(self, event_id: str) -> None:
        await self.publisher.send(self.names.deadlines, {"event_id": event_id, **ROUND_1})

    def check(self, test: str, events: list[dict[str, Any]], event_id: str, **figures: Any
              ) -> None:
        expected = {"decisions": {e["event_id"] for e in events},
                    **round_expected(events, 1, event_id, self.pipeline.partitions)}
        by_topic = audit(self.committed, self.names, expected)
        sums = totals(by_topic)
        record(test, customers=len(events), workers=self.pipeline.workers, **sums,
               longest_gap_seconds=max(self.gaps, default=0.0), gaps=self.gaps, **figures,
               per_topic={k: v for k, v in by_topic.items() if v["records"]})
        assert sums["lost"] == 0 and sums["unexpected"] == 0, by_topic
        if GUARANTEE == "exactly_once":
            assert sums["duplicates"] == 0, by_topic


async def test_kills_mid_ingest_and_mid_round(broker: str, tmp_path: Path,
                                              publisher: Publisher) -> None:
    async with Run(Pipeline(broker, tmp_path), publisher) as run:
        names = run.names
        await run.pipeline.start(0)
        events = population("KI", CUSTOMERS)
        await publisher.send_many(names.cancellations, events)
        await run.kill_when(0, lambda: run.seen(names.decisions) >= CUSTOMERS // 3,
                            "a third of the decisions")
        assert run.seen(names.decisions) < CUSTOMERS, "the ingest ended before the kill"
        ready = await run.pipeline.start(0)
        await run.until(lambda: run.decided(CUSTOMERS), ready, "every decision")

        await run.deadline("KI-r1")
        await run.kill_when(0, lambda: run.seen(names.sms, names.email) >= CUSTOMERS // 10,
                            "the round to start")
        assert run.seen(names.sms, names.email) < CUSTOMERS, "the round ended before the kill"
        ready = await run.pipeline.start(0)
        await run.until(lambda: run.round_done("KI-r1"), ready, "round 1 on every partition")
        await run.committed.settle(quiet=3.0)
        run.check("kill-mid-ingest-and-round", events, "KI-r1", kills=2)
        assert max(run.gaps) <= RESUME_WITHIN, run.gaps


async def test_one_of_two_workers_killed_mid_round(broker: str, tmp_path: Path,
                                                   publisher: Publisher) -> None:
    async with Run(Pipeline(broker, tmp_path, workers=2), publisher) as run:
        names = run.names
        await asyncio.gather(run.pipeline.start(0), run.pipeline.start(1))
        events = population("KT", CUSTOMERS)
        await publisher.send_many(names.cancellations, events)
        await run.committed.wait_for(lambda: run.decided(CUSTOMERS), timeout=300,
                                     what="every decision")
        await run.deadline("KT-r1")
        killed = await run.kill_when(
            0, lambda: run.seen(names.sms, names.email) >= CUSTOMERS // 10, "the round")
        # The survivor takes the partitions over once the group drops the dead member
        # (its session timeout), then resumes them as a restarted worker would.
        gap = await run.until(lambda: run.round_done("KT-r1"), killed,
                              "round 1 on every partition")
        await run.committed.settle(quiet=3.0)
        session = run.pipeline.settings.session_timeout
        run.check("kill-one-of-two", events, "KT-r1", kills=1, session_timeout=session)
        assert gap <= session + RESUME_WITHIN, run.gaps


async def test_kill_while_recovering(broker: str, tmp_path: Path,
                                     publisher: Publisher) -> None:
    """The replacement starts on a machine with no local state, so it rebuilds its
    tables from the changelogs, and is killed in the middle of that."""
    async with Run(Pipeline(broker, tmp_path), publisher) as run:
        names = run.names
        await run.pipeline.start(0)
        events = population("KR", CUSTOMERS)
        await publisher.send_many(names.cancellations, events)
        await run.committed.wait_for(lambda: run.decided(CUSTOMERS), timeout=300,
                                     what="every decision")
        await run.deadline("KR-r1")
        await run.kill_when(0, lambda: run.seen(names.sms, names.email) >= CUSTOMERS // 10,
                            "the round to start")
        run.pipeline.replace(0, tmp_path / "replacement")
        replacement = run.pipeline.procs[0]
        await asyncio.to_thread(replacement.launch)
        await wait_for_log(replacement, "Restoring state from changelog topics")
        replacement.kill()
        ready = await run.pipeline.start(0)
        await run.until(lambda: run.round_done("KR-r1"), ready, "round 1 on every partition")
        await run.committed.settle(quiet=3.0)
        run.check("kill-while-recovering", events, "KR-r1", kills=2)
        assert max(run.gaps) <= RESUME_WITHIN, run.gaps
