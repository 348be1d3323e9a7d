"""The ingest baseline's job done by a Faust agent: the Faust floor of the ingest.

  python bench/faust_relay.py --bootstrap H:P --source T --dest T2 --n N --size S

A Faust worker with the pipeline's Faust settings and patches (streams.faust_fixes,
streams.fetch_sessions; at-least-once) reads N records of T in a fresh consumer group,
in batches as the pipeline's agent takes them (streams.batches.take_batches), and
produces one record of S bytes per record to T2 (same key) with aiokafka's producer,
as bench/baseline.py ingest does. No rules, no state, no table: what any Faust agent
pays to get events from Kafka and one record out per event.

Prints {"t0": monotonic} when the worker is ready (as the pipeline's ready line) and
{"done": monotonic, ...} once the N-th record's send is acked, then exits; it exits 1
on its own after --timeout seconds.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faust

from bench.baseline import payload, say
from streams.app import faust_app
from streams.batches import take_batches
from streams.settings import Settings


def build(args: argparse.Namespace, data_dir: str) -> faust.App:
    # The worker's Faust app (at-least-once by default), in a consumer group of its own.
    settings = Settings(broker=f"kafka://{args.bootstrap}", session_timeout=6.0,
                        processing_guarantee="at_least_once",
                        app_id=f"bench-faust-relay-{uuid.uuid4().hex[:8]}", data_dir=data_dir)
    app = faust_app(settings, web_enabled=False)
    source = app.topic(args.source, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    out = payload(args.size, 0)

    @app.agent(source)
    async def relay(stream: Any) -> None:
        producer = app.producer._ensure_producer()  # aiokafka's, as the pipeline's writer
        sent: list[asyncio.Future[Any]] = []
        async for events in take_batches(stream, settings.max_batch,
                                         settings.batch_wait_ms / 1000):
            for event in events:
                sent.append(await producer.send(args.dest, out, key=event.message.key))
            if len(sent) >= args.n:
                await asyncio.gather(*sent)
                say(done=time.monotonic(), relayed=len(sent))
                os._exit(0)  # measured: no orderly stop to wait for

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--dest", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faust-relay-") as data_dir:
        app = build(args, data_dir)

        class Worker(faust.Worker):
            async def on_startup_finished(self) -> None:
                await super().on_startup_finished()
                say(t0=time.monotonic())

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.call_later(args.timeout, lambda: os._exit(1))
        # Its banner and spinner go to stderr: stdout carries only the JSON lines.
        worker = Worker(app, loglevel="WARNING", redirect_stdouts=False, quiet=True, loop=loop,
                        stdout=sys.stderr)
        worker.execute_from_commandline()
    return 1  # the agent exits the process once done


if __name__ == "__main__":
    sys.exit(main())
