"""Per-customer CPU cost of the pure steps the agent runs, without a broker or profiler.

    python bench/micro.py [--n 3000]

A profiler inflates call-heavy code (Jinja, pydantic wrappers); these timings are the
plain costs, in microseconds per call, to weigh the profile's hot spots against the
worker CPU per event that bench/run.py reports.
"""

import argparse
import json
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rules.customer import on_cancellation, on_round  # noqa: E402
from rules.messages import _environment, notification_id, render  # noqa: E402
from schemas.events import Cancellation  # noqa: E402
from schemas.state import CustomerState  # noqa: E402
from streams.codec import parse  # noqa: E402
from streams.settings import Settings  # noqa: E402
from tests.factories import cancellation_dict  # noqa: E402

ROUND_AT = datetime.fromisoformat("2026-01-21T10:00:00+09:00")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="calls per step (3000)")
    n = parser.parse_args().n
    program = Settings().program()
    now = datetime.now(UTC)
    raw = json.dumps(cancellation_dict("C0000001", contact={
        "name": "김민수", "phone": "010-2000-0001", "email": None,
        "preferred_channel": "sms"}), ensure_ascii=False).encode()
    event = parse(Cancellation, raw)
    state = on_cancellation(None, event, 0, program, now).state
    stored = state.model_dump(mode="json")
    after_round = on_round(state, 1, ROUND_AT, program, now)
    task = after_round.notifications[0]
    stored_after = after_round.state.model_dump(mode="json")
    email_state = CustomerState.model_validate(
        {**stored, "cancellation": {**stored["cancellation"], "contact": {
            "name": "김민수", "phone": None, "email": "minsu@example.com",
            "preferred_channel": "email"}}}, strict=False)
    sms = _environment(False).get_template("guidance_round_1.sms.j2")
    context = {"name": "김민수", "refund_krw": 184000, "deadline": "1월 31일",
               "channels": ["web", "call_center", "store"], "carrier": "통신사", "round": 1,
               "last_notice": False}
    steps = {
        "ingest: parse the cancellation (pydantic, JSON)": lambda: parse(Cancellation, raw),
        "ingest: on_cancellation (rules)": lambda: on_cancellation(None, event, 0, program, now),
        "ingest+fan-out: state.model_dump(mode='json') (table value)":
            lambda: state.model_dump(mode="json"),
        "ingest+fan-out: json.dumps(table value) (Faust changelog)":
            lambda: json.dumps(stored_after),
        "fan-out: load(): CustomerState.model_validate(stored, strict=False)":
            lambda: CustomerState.model_validate(stored, strict=False),
        "fan-out: on_round, SMS customer (incl. 1 render)":
            lambda: on_round(state, 1, ROUND_AT, program, now),
        "fan-out: on_round, e-mail customer (incl. 3 renders)":
            lambda: on_round(email_state, 1, ROUND_AT, program, now),
        "fan-out: rules.messages.render(sms) (get_template + render)":
            lambda: render("guidance_round_1", "sms", context),
        "fan-out: cached Template.render(sms)": lambda: sms.render(context),
        "fan-out: Template.new_context (part of every render)":
            lambda: sms.new_context(context),
        "fan-out: notification_id (uuid5)": lambda: notification_id("C0000001", 1),
        "fan-out: task.model_dump_json() (output record)": lambda: task.model_dump_json(),
    }
    print(f"{'µs/call':>8}  step")
    for name, fn in steps.items():
        fn()
        seconds = min(timeit.repeat(fn, number=n, repeat=3)) / n
        print(f"{seconds * 1e6:8.1f}  {name}")
    print(f"\nstate as JSON: {len(json.dumps(stored_after))} bytes; as a Python dict tree: "
          f"{deep_size(stored_after)} bytes")
    return 0


def deep_size(value: object) -> int:
    """sys.getsizeof over a dict/list tree (shared small objects counted each time)."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k) + deep_size(v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        size += sum(deep_size(v) for v in value)
    return size


if __name__ == "__main__":
    raise SystemExit(main())
