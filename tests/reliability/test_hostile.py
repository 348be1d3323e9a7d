"""Hostile input: thousands of random and malformed messages mixed with valid events.

The worker never stops, every bad message lands in the dead-letter topic with a
reason, and every valid event gets its correct decision.
"""

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.eligibility import eligibility_reason
from rules.program import load_program
from schemas import Cancellation
from streams.reader import OutputReader
from streams.runner import WorkerProcess
from streams.topics import TopicNames
from tests.conftest import Publisher
from tests.factories import cancellation_dict
from tests.reliability.figures import record

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(900)]

PROGRAM = load_program()
RUN = "H" + uuid.uuid4().hex[:6]
TOTALS = {"batches": 0, "valid": 0, "bad": 0}

seoul_moments = st.datetimes(
    min_value=__import__("datetime").datetime(2025, 8, 1),
    max_value=__import__("datetime").datetime(2026, 2, 28),
).map(lambda d: d.isoformat() + st_offset(d))


def st_offset(moment) -> str:
    return ["+09:00", "Z", "-05:00"][moment.microsecond % 3]


valid_events = st.builds(
    lambda i, at, line, term, change, penalty, contact: cancellation_dict(
        f"{RUN}v{i}", event_id=f"{RUN}-e{uuid.uuid4().hex}", cancelled_at=at, line_type=line,
        termination=term, last_contract_change=change, penalty_krw=penalty, contact=contact),
    st.integers(0, 10**9),
    seoul_moments,
    st.sampled_from(["postpaid", "prepaid", "mvno", "iot"]),
    st.sampled_from(["voluntary", "involuntary"]),
    st.one_of(st.none(), st.fixed_dictionaries({
        "kind": st.sampled_from(["new_signup", "device_change", "recontract"]),
        "on": st.dates(min_value=__import__("datetime").date(2024, 1, 1),
                       max_value=__import__("datetime").date(2026, 1, 31)).map(str)})),
    st.integers(0, 10_000_000),
    st.one_of(st.none(), st.fixed_dictionaries({
        "name": st.text(max_size=30),
        "phone": st.one_of(st.none(), st.just("010-1234-5678")),
        "email": st.one_of(st.none(), st.just("a@example.com"))})),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12)


def corrupt(event: dict, data: st.DataObject) -> bytes:
    """A cancellation with one required field broken in a way the contract forbids."""
    field = data.draw(st.sampled_from(["event_id", "customer_id", "cancelled_at", "line_type",
                                       "termination", "penalty_krw"]))
    broken = dict(event)
    broken[field] = data.draw(st.sampled_from({
        "event_id": [None, 17, "", ["x"]],
        "customer_id": [None, "", "has space", "x" * 65, 12],
        "cancelled_at": ["2026-02-30T10:00:00+09:00", "2026-01-05T14:03:00", "soon", 0,
                         "2026-13-01T00:00:00Z"],
        "line_type": ["satellite", "", None, 3],
        "termination": ["maybe", None, True],
        "penalty_krw": [-1, "184000", 1.5, None, 10**12],
    }[field]))
    if data.draw(st.booleans()):
        del broken[field]
    return json.dumps(broken).encode()


garbage = st.one_of(
    st.binary(min_size=1, max_size=200).filter(lambda b: not b.strip().startswith(b"{")),
    st.binary(min_size=2, max_size=50).map(lambda b: b"{\"event_id\": \"" + b + b"\xff\xfe"),
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    st.integers(1000, 5000).map(lambda n: ("[" * n + "]" * n).encode()),
    st.integers(100_000, 900_000).map(lambda n: json.dumps({"event_id": "x" * n}).encode()),
    st.text(min_size=1, max_size=100).map(lambda t: t.encode("utf-16")),
)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_hostile_mix_never_stops_the_pipeline(
        data: st.DataObject, worker: WorkerProcess, outputs: OutputReader, names: TopicNames,
        publisher: Publisher) -> None:
    valid = data.draw(st.lists(valid_events, min_size=20, max_size=60), label="valid")
    bad: list[bytes] = []
    for event in data.draw(st.lists(valid_events, min_size=10, max_size=30)):
        bad.append(corrupt(event, data))
    bad += data.draw(st.lists(garbage, min_size=20, max_size=60), label="garbage")
    order = data.draw(st.permutations(
        [("valid", v) for v in valid] + [("bad", b) for b in bad]))
    sent_bad: dict[tuple[int, int], bytes] = {}
    keys = st.one_of(st.none(), st.binary(max_size=20), st.text(max_size=20).map(str.encode))
    for kind, value in order:
        if kind == "valid":
            await publisher.send(names.cancellations, value)
        else:
            key = data.draw(keys)
            meta = await publisher.producer.send_and_wait(names.cancellations, value, key=key)
            sent_bad[(meta.partition, meta.offset)] = value
    ids = {v["event_id"] for v in valid}

    def letters() -> dict[tuple[int, int], dict]:
        return {(d["partition"], d["offset"]): d for d in outputs.values(
            names.dead_letter, lambda d: d["source_topic"] == names.cancellations)}

    def decided() -> dict[str, dict]:
        return {d["source_event_id"]: d for d in outputs.values(
            names.decisions, lambda d: d["source_event_id"] in ids)}

    await outputs.wait_for(lambda: set(sent_bad) <= set(letters()) and len(decided()) == len(ids),
                           timeout=120, what="every bad message dead-lettered, every valid decided")
    assert worker.running
    for position, raw in sent_bad.items():
        letter = letters()[position]
        assert letter["error"] and ":" in letter["error"]
        if len(raw) < 200_000:
            assert letter["value"] == raw.decode("utf-8", errors="replace")
    for event in valid:
        expected = eligibility_reason(Cancellation.model_validate_json(json.dumps(event)),
                                      PROGRAM)
        assert decided()[event["event_id"]]["reason"] == expected
    TOTALS["batches"] += 1
    TOTALS["valid"] += len(valid)
    TOTALS["bad"] += len(sent_bad)


def test_zz_record_hostile_totals() -> None:
    assert TOTALS["batches"] > 0
    record("hostile-input", **TOTALS, worker_restarts=0)
