"""The raw-aiokafka baselines, each in a process of its own (like the worker).

  python bench/baseline.py ingest --bootstrap H:P --source T --dest T2 --n N --size S
      consumes N records of T in a fresh consumer group and produces one record of S
      bytes per record to T2 (same key), acks=all, then flushes and exits.
  python bench/baseline.py fanout --bootstrap H:P --dest T2 --n N --size S
      pre-renders N records of S bytes, then produces them to T2, acks=all.
  python bench/baseline.py relay --bootstrap H:P --source T --dest T2 --n N --size S
      [--fetch-wait-ms W]: for the latency baseline, as each of N records of T
      arrives, produces a record of S bytes to T2 naming its event_id (acks=all,
      not awaited one by one), with the worker's fetch wait.

ingest and fanout with --state-size S2 are the I/O floor of the pipeline's design:
after each record of S bytes, a second one of S2 bytes with the same key, as the
worker writes the customer's new state to its table's changelog.

Each prints one JSON line when its timed part starts ({"t0": monotonic}: for ingest,
when the group has assigned the partitions; for fan-out, before the first send) and one
when it is done; it exits 1 on its own after --timeout seconds.
"""

import argparse
import asyncio
import json
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def payload(size: int, i: int) -> bytes:
    """A JSON-ish record of exactly `size` bytes, different for each i."""
    head = f'{{"customer_id":"B{i:07d}","body":"'.encode()
    tail = b'"}'
    fill = max(0, size - len(head) - len(tail))
    return head + (b"x" * fill) + tail


class Assigned(ConsumerRebalanceListener):
    """t0 is the first assignment: the group is joined, records can flow (what the
    worker's ready line means)."""

    def __init__(self) -> None:
        self.said = False

    def on_partitions_revoked(self, revoked: object) -> None:
        pass

    def on_partitions_assigned(self, assigned: object) -> None:
        if not self.said:
            self.said = True
            say(t0=time.monotonic())


async def ingest(args: argparse.Namespace) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=f"bench-baseline-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
        enable_auto_commit=True, session_timeout_ms=6000, heartbeat_interval_ms=1500)
    consumer.subscribe([args.source], listener=Assigned())
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    await producer.start()
    await consumer.start()
    try:
        out = payload(args.size, 0)
        state = payload(args.state_size, 0) if args.state_size else None
        seen = 0
        while seen < args.n:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for messages in batches.values():
                for m in messages:
                    await producer.send(args.dest, out, key=m.key)
                    if state is not None:
                        await producer.send(args.dest, state, key=m.key)
                    seen += 1
        await producer.flush()
        say(done=time.monotonic(), consumed=seen)
    finally:
        await consumer.stop()
        await producer.stop()


async def relay(args: argparse.Namespace) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=f"bench-relay-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
        enable_auto_commit=True, session_timeout_ms=6000, heartbeat_interval_ms=1500,
        fetch_max_wait_ms=args.fetch_wait_ms)
    consumer.subscribe([args.source], listener=Assigned())
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    await producer.start()
    await consumer.start()
    try:
        pending = []
        while len(pending) < args.n:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for messages in batches.values():
                for m in messages:
                    head = json.dumps({"source_event_id": json.loads(m.value)["event_id"]})
                    out = head.encode().ljust(args.size)
                    pending.append(await producer.send(args.dest, out, key=m.key))
        await asyncio.gather(*pending)
        say(done=time.monotonic(), relayed=len(pending))
    finally:
        await consumer.stop()
        await producer.stop()


async def fanout(args: argparse.Namespace) -> None:
    records = [(f"B{i:07d}".encode(), payload(args.size, i)) for i in range(args.n)]
    if args.state_size:  # each customer's task, then its new state
        records = [(key, value) for i, (key, task) in enumerate(records)
                   for value in (task, payload(args.state_size, i))]
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    await producer.start()
    try:
        say(t0=time.monotonic())
        for key, value in records:
            await producer.send(args.dest, value, key=key)
        await producer.flush()
        say(done=time.monotonic(), produced=len(records))
    finally:
        await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["ingest", "fanout", "relay"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source")
    parser.add_argument("--dest", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--fetch-wait-ms", type=int, default=500)
    parser.add_argument("--state-size", type=int, default=0,
                        help="ingest, fanout: also a state record of this size per record")
    args = parser.parse_args()
    run = {"ingest": ingest, "fanout": fanout, "relay": relay}[args.mode](args)
    try:
        asyncio.run(asyncio.wait_for(run, args.timeout))
    except TimeoutError:
        print(f"baseline {args.mode}: not done after {args.timeout:.0f}s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
