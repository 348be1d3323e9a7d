"""Three guidance rounds with events moving between partitions while they run.

Under exactly-once every topic the worker writes ends in transaction markers, the
rerouted one (events that arrived off their customer's partition) among them. A
round trigger waits for the customer events its partition held when it came; that
wait must count records, not offsets, or it never ends. Here most events arrive off
their partition, more keep coming as each round is fired, and every round must still
finish on every partition within seconds.
"""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from streams.admin import ensure_topics
from streams.app import partition_for
from streams.reader import OutputReader
from tests.conftest import GUARANTEE, Publisher
from tests.reliability.crash import Pipeline, audit, population, round_expected, totals
from tests.reliability.figures import record

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(600)]

ROUND_AT = {1: "2026-01-21T10:00:00+09:00", 2: "2026-01-26T07:30:00+09:00",
            3: "2026-01-29T21:30:00+09:00"}
BATCH = 1500  # customers decided before each round; as many again in flight
FINISH_WITHIN = 15.0  # seconds from a deadline to its round's end on every partition


async def publish_off_home(publisher: Publisher, topic: str, events: list[dict[str, Any]],
                           partitions: int) -> None:
    """Each event on the partition after its customer's: every one is moved."""
    for event in events:
        home = partition_for(event["customer_id"], partitions)
        await publisher.producer.send(topic, json.dumps(event, ensure_ascii=False).encode(),
                                      key=event["customer_id"].encode(),
                                      partition=(home + 1) % partitions)
    await publisher.producer.flush()


async def test_rounds_finish_with_rerouted_events_in_flight(broker: str, tmp_path: Path,
                                                           publisher: Publisher) -> None:
    pipeline = Pipeline(broker, tmp_path)
    names, partitions = pipeline.names, pipeline.partitions
    await ensure_topics(pipeline.settings)
    reader = await OutputReader(pipeline.settings.bootstrap, names.outputs()).start()
    try:
        await pipeline.start(0)
        decided_before: dict[int, list[dict[str, Any]]] = {}
        everyone: list[dict[str, Any]] = []
        seconds: dict[int, float] = {}
        for round_no in (1, 2, 3):
            settled = population(f"R{round_no}S", BATCH)
            await publish_off_home(publisher, names.cancellations, settled, partitions)
            everyone += settled
            want = len(everyone)
            await reader.wait_for(lambda w=want: len(reader.records[names.decisions]) >= w,
                                  timeout=120, what=f"decisions before round {round_no}")
            decided_before[round_no] = list(everyone)
            in_flight = population(f"R{round_no}F", BATCH)
            flight = asyncio.create_task(
                publish_off_home(publisher, names.cancellations, in_flight, partitions))
            fired = time.monotonic()
            await publisher.send(names.deadlines, {
                "event_id": f"d-{round_no}", "kind": "guidance_round", "round": round_no,
                "at": ROUND_AT[round_no]}, key=None)
            await reader.wait_for(lambda n=round_no: {
                p["partition"] for p in reader.values(
                    names.round_progress, lambda v, n=n: v["event_id"] == f"d-{n}")}
                == set(range(partitions)), timeout=120, what=f"round {round_no}")
            seconds[round_no] = round(time.monotonic() - fired, 2)
            await flight
            everyone += in_flight
        await reader.wait_for(lambda: len(reader.records[names.decisions]) >= len(everyone),
                              timeout=120, what="every decision")
        await reader.settle(quiet=3.0)

        # Every customer decided before a round got its task, once; those in flight
        # may or may not have (they came with the trigger).
        by_topic = audit(reader, names, {"decisions": {e["event_id"] for e in everyone}})
        tasks = {t["notification_id"]: t for topic in (names.sms, names.email)
                 for t in reader.values(topic)}
        for round_no, customers in decided_before.items():
            want = round_expected(customers, round_no, f"d-{round_no}", partitions)
            assert want["sms"] | want["email"] <= set(tasks), f"round {round_no}"
        record("rounds-with-rerouted-events", customers=len(everyone), workers=1,
               lost=by_topic["decisions"]["lost"],
               duplicates=sum(t["duplicates"] for t in by_topic.values()),
               round_seconds=seconds)
        assert totals(by_topic)["lost"] == 0
        if GUARANTEE == "exactly_once":
            assert totals(by_topic)["duplicates"] == 0, by_topic
        assert max(seconds.values()) <= FINISH_WITHIN, seconds
    finally:
        await reader.stop()
        await asyncio.to_thread(pipeline.stop)
