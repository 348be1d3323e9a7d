"""Write docs/reliability.md from the figures the reliability tests recorded.

Usage: python -m tests.reliability.report FIGURES.jsonl [FIGURES.jsonl ...] > docs/reliability.md
"""

import json
import os
import platform
import sys
from datetime import UTC, datetime

COLUMNS = ["test", "broker", "guarantee", "customers", "workers", "kills", "broker_restarts",
           "worker_kills", "lost", "duplicates", "unexpected", "longest_gap_seconds", "gaps",
           "round_seconds",
           "outage_seconds", "publish_retries", "batches", "valid", "bad", "outcome"]


def main(paths: list[str]) -> None:
    rows = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f if line.strip()]
    columns = [c for c in COLUMNS if any(c in r for r in rows)]
    print("# Reliability report\n")
    print(f"Produced by `scripts/reliability-report` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
          "Each row is one test run of real worker processes, started as a user starts "
          "them, against Apache Kafka 4.1 (KRaft). On every output topic, `lost` counts "
          "expected records never committed, `duplicates` extra copies (by "
          "`notification_id`, source event or partition), `unexpected` records nobody "
          "asked for; `longest_gap_seconds` is the longest time without new committed "
          "output while work was due, from a restarted worker's ready line (or from the "
          "kill, where a second worker takes over; or from the broker's return).\n")
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" for _ in columns) + " |")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    print(NOTES)


NOTES = """
## What holds

- **Exactly-once, the default on Apache Kafka** (`processing_guarantee=auto` asks the
  broker for a transactional producer id at start-up). Every due customer gets exactly
  one task per round, and every input event exactly one decision or refund, through
  a SIGKILL in the middle of the ingest, of a round, of the worker's own recovery, of
  one of two workers, and through a broker restart. Outputs, table changes and input
  offsets of a batch of events commit in one Kafka transaction
  (`streams/writer.py`); consumers read with `isolation.level=read_committed`.
- **Output resumes within 10 seconds** of a restarted worker's ready line. The
  transactional ids are stable (`{app}-{group}-{partition}`), so the restarted or the
  surviving worker's first InitProducerId fences the dead one and aborts its open
  transactions at once (KIP-98); nothing waits for the transaction timeout.
- **Local state survives a restart.** Tables live in RocksDB under the data directory
  (`streams/state_store.py`) with each partition's changelog offset; a restarted
  worker reads only the changelog's tail after it. The store is transactional: a
  batch's changes are written to RocksDB only after the Kafka transaction that carries
  them commits (or, at-least-once, after the changelog's acks), so a kill never leaves
  aborted state behind and the store needs no wipe after an unclean shutdown. A store
  whose offset lies beyond the changelog's end (the topic was recreated) is wiped and
  rebuilt.
- **At-least-once** (brokers without transactions, such as the embedded tansu broker,
  or `processing_guarantee=at_least_once`): outputs are acknowledged before the state
  that records them, so a crash can send a task again, with the same
  `notification_id`; gateways drop a `notification_id` they have already sent. Run
  production on Apache Kafka; tansu is for the demo and the tests.

## What these tests found in faust-streaming 0.15, and the fixes

1. Its exactly-once picks a transaction by each record's destination partition, so
   outputs to topics the worker does not consume went out outside any transaction, and
   its commit timer commits between two sends of one event: duplicates after a kill.
   Fix: `streams/writer.py` sends a batch's outputs, table changes and offsets through
   the source partition's transactional producer, holding its lock until the acks.
2. Its RocksDB store writes every change at once, including those of a transaction
   that is later aborted: after a kill the store holds state Kafka never committed.
   Fix: `streams/state_store.py` writes a batch's changes only once they are committed.
3. Under exactly-once a changelog ends in a transaction marker, and recovery noticed
   only after two 5 s timeouts: every restart stood still for 10 s. Fix: recovery ends
   once the consumer is past the end and has applied the last record it fetched
   (`streams/faust_fixes.py`, 12); the round barrier counts records, not offsets,
   for the same reason (`streams/round_barrier.py`).
4. Its recovery under exactly-once took a changelog's end from the last *fetch*
   (`last_stable_offset`), unknown right after an assignment, and recovered nothing:
   after a broker restart a fresh worker decided every customer again. Fix: ask the
   broker (`streams/faust_fixes.py`, 1).
5. A race at the end of recovery dropped records already marked read (a round trigger
   lost, a round never finishing). Fix: stop the consumer's flow before the seek
   (`streams/faust_fixes.py`, 2).
6. After a rebalance, aiokafka's `seek_to_committed` skips a partition whose committed
   offset is missing or 0, and records of it fetched and dropped during the rebalance
   were never read again (a worker that took over never ran their round triggers).
   Fix: seek such partitions to 0 or by the reset policy (`streams/faust_fixes.py`, 4).
7. A round trigger can be read before customer events published well before it (the
   topics are read side by side); those customers would miss their partition's round.
   Fix: a trigger waits for the events its partition held when it came
   (`streams/round_barrier.py`).
8. After a rebalance Faust keeps a transactional producer it already has for a
   partition that comes back, though another worker has used that transactional id
   since: the survivor of a two-worker takeover died on ProducerFenced a second
   after taking over. Fix: fresh producers for newly assigned partitions
   (`streams/faust_fixes.py`, 13).
"""


if __name__ == "__main__":
    main(sys.argv[1:])
