"""Publish → consume latency on the embedded tansu broker, raw aiokafka, for two values of
the consumer's fetch_max_wait_ms (Faust hard-codes 1500 ms for its stream consumer).

    python bench/fetch_wait.py [--messages 500] [--rate 100]

Shows how much of the pipeline's latency at a low rate on tansu is the broker holding a
fetch until its max wait, not the pipeline.
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from brokers.tansu import embedded_broker  # noqa: E402


async def measure(bootstrap: str, wait_ms: int, messages: int, rate: float) -> list[float]:
    topic = f"fetch-wait-{wait_ms}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 8, 1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="latest", fetch_max_wait_ms=wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    try:
        await asyncio.sleep(2)  # partitions assigned, positions at the end

        async def consume() -> None:
            while len(latencies) < messages:
                batches = await consumer.getmany(timeout_ms=100)
                now = time.monotonic()
                latencies.extend(now - float(m.value) for ms in batches.values() for m in ms)

        task = asyncio.create_task(consume())
        for i in range(messages):
            await producer.send(topic, str(time.monotonic()).encode(), key=str(i).encode())
            await asyncio.sleep(1 / rate)
        await asyncio.wait_for(task, 60)
    finally:
        await producer.stop()
        await consumer.stop()
    return sorted(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second")
    args = parser.parse_args()
    with embedded_broker() as bootstrap:
        for wait_ms in (1500, 50):
            lat = asyncio.run(measure(bootstrap, wait_ms, args.messages, args.rate))
            p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"fetch_max_wait_ms={wait_ms:5d}: p50 {p50 * 1000:6.1f} ms, "
                  f"p99 {p99 * 1000:6.1f} ms ({len(lat)} messages at {args.rate:g}/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
