"""Cancellations and applications through the real worker on a real broker."""

import pytest

from streams.app import partition_for
from streams.reader import OutputReader
from streams.topics import TopicNames
from tests.conftest import PARTITIONS, Publisher
from tests.factories import application_dict, cancellation_dict

pytestmark = pytest.mark.integration


def mine(tag: str):
    return lambda v: str(v.get("customer_id", "")).startswith(tag)


CASES = [
    ({}, "eligible"),
    ({"cancelled_at": "2025-09-01T00:00:00+09:00"}, "eligible"),
    ({"cancelled_at": "2025-08-31T23:59:59+09:00"}, "cancelled_outside_period"),
    ({"cancelled_at": "2026-01-13T23:59:59+09:00"}, "eligible"),
    ({"cancelled_at": "2026-01-13T15:30:00Z"}, "cancelled_outside_period"),
    ({"line_type": "mvno"}, "mvno"),
    ({"line_type": "iot"}, "iot"),
    ({"termination": "involuntary"}, "involuntary_termination"),
    ({"last_contract_change": {"kind": "device_change", "on": "2025-09-01"}},
     "recent_contract_change"),
    ({"last_contract_change": {"kind": "new_signup", "on": "2025-08-31"}}, "eligible"),
]


async def test_one_decision_per_distinct_cancellation(
        tag: str, publisher: Publisher, outputs: OutputReader, names: TopicNames) -> None:
    events = [cancellation_dict(f"{tag}-{i}", **fields) for i, (fields, _) in enumerate(CASES)]
    await publisher.send_all(names.cancellations, events)
    await publisher.send(names.cancellations, events[0])  # redelivered: same event_id
    await outputs.wait_for(lambda: len(outputs.values(names.decisions, mine(tag))) >= len(CASES),
                           what="decisions")
    await outputs.settle(quiet=1.5)
    decisions = {d["customer_id"]: d for d in outputs.values(names.decisions, mine(tag))}
    assert len(outputs.values(names.decisions, mine(tag))) == len(CASES)
    for i, (_, reason) in enumerate(CASES):
        d = decisions[f"{tag}-{i}"]
        assert d["reason"] == reason
        assert d["eligible"] == (reason == "eligible")
        assert d["refund_krw"] == (184000 if reason == "eligible" else 0)
        assert d["source_event_id"] == events[i]["event_id"]


async def test_refunds_scheduled_rejected_and_resolved_late(
        tag: str, publisher: Publisher, outputs: OutputReader, names: TopicNames) -> None:
    ok, late, ineligible, early_app, twice = (f"{tag}-{n}" for n in
                                              ("ok", "late", "inel", "early", "twice"))
    # An application before its cancellation: kept, resolved when the cancellation comes.
    await publisher.send(names.applications,
                         application_dict(early_app, applied_at="2026-01-30T09:00:00+09:00"))
    await publisher.send_all(names.cancellations, [
        cancellation_dict(ok), cancellation_dict(late), cancellation_dict(twice),
        cancellation_dict(ineligible, line_type="mvno"), cancellation_dict(early_app)])
    await outputs.wait_for(lambda: len(outputs.values(names.decisions, mine(tag))) == 5,
                           what="decisions")
    second = application_dict(twice, applied_at="2026-01-20T10:00:00+09:00")
    await publisher.send_all(names.applications, [
        application_dict(ok, applied_at="2026-01-15T23:59:00+09:00"),
        application_dict(late, applied_at="2026-01-31T15:00:00Z"),
        application_dict(ineligible),
        application_dict(twice), second, second])
    await outputs.wait_for(lambda: len(outputs.values(names.refunds, mine(tag))) >= 6,
                           what="refunds")
    await outputs.settle(quiet=1.5)
    refunds = outputs.values(names.refunds, mine(tag))
    got = sorted((r["customer_id"].split("-")[1], r["status"], r["reason"], r["payout_date"],
                  r["refund_krw"]) for r in refunds)
    assert got == sorted([
        ("ok", "scheduled", None, "2026-01-22", 184000),
        ("late", "rejected", "outside_application_window", None, 0),
        ("inel", "rejected", "not_eligible", None, 0),
        ("early", "scheduled", None, "2026-02-19", 184000),
        ("twice", "scheduled", None, "2026-01-22", 184000),
        ("twice", "rejected", "already_applied", None, 0),
    ])


async def test_wrong_or_missing_key_still_reaches_the_customer(
        tag: str, publisher: Publisher, outputs: OutputReader, names: TopicNames) -> None:
    customers = [f"{tag}-{i}" for i in range(8)]
    for i, customer in enumerate(customers):
        key = None if i % 2 else f"someone-else-{i}"
        await publisher.send(names.cancellations, cancellation_dict(customer), key=key)
        await publisher.send(names.applications, application_dict(customer), key=key)
    await outputs.wait_for(lambda: len(outputs.values(names.refunds, mine(tag))) == 8,
                           what="refunds")
    await outputs.settle(quiet=1.5)
    assert sorted(r["customer_id"] for r in outputs.values(names.refunds, mine(tag))) == customers
    assert {r["status"] for r in outputs.values(names.refunds, mine(tag))} == {"scheduled"}
    assert len(outputs.values(names.decisions, mine(tag))) == 8


BAD = [
    (b"this is not json", "value: not valid JSON"),
    (b"\xc3\x28 invalid utf-8", "value: not valid UTF-8"),
    (b'{"customer_id": "X"', "value: not valid JSON"),
    ("missing", "cancelled_at: Field required"),
    ("wrong_type", "penalty_krw: Input should be a valid integer"),
    ("enum", "line_type: Input should be"),
    ("negative", "penalty_krw: Input should be greater than or equal to 0"),
    ("no_such_day", "cancelled_at: Input should be a valid datetime"),
    ("contact", "contact.preferred_channel"),
]


def bad_event(tag: str, i: int, kind: str) -> dict:
    event = cancellation_dict(f"{tag}-bad{i}")
    if kind == "missing":
        del event["cancelled_at"]
    elif kind == "wrong_type":
        event["penalty_krw"] = "184000"
    elif kind == "enum":
        event["line_type"] = "satellite"
    elif kind == "negative":
        event["penalty_krw"] = -5
    elif kind == "no_such_day":
        event["cancelled_at"] = "2026-02-30T10:00:00+09:00"
    elif kind == "contact":
        event["contact"]["preferred_channel"] = "pigeon"
    return event


async def test_bad_input_goes_to_dead_letter_and_the_stream_goes_on(
        tag: str, publisher: Publisher, outputs: OutputReader, names: TopicNames) -> None:
    good = []
    for i, (payload, _) in enumerate(BAD):
        value = payload if isinstance(payload, bytes) else bad_event(tag, i, payload)
        await publisher.send(names.cancellations, value, key=f"{tag}-bad{i}")
        event = cancellation_dict(f"{tag}-good{i}")
        good.append(event)
        await publisher.send(names.cancellations, event)
    bad_app = application_dict(f"{tag}-good0", channel="carrier-pigeon")
    await publisher.send(names.applications, bad_app)
    await publisher.send(names.deadlines, {"event_id": f"{tag}-d", "kind": "guidance_round",
                                           "round": 9, "at": "2026-01-21T10:00:00+09:00"})

    def letters() -> list[dict]:
        return outputs.values(names.dead_letter,
                              lambda v: (v["key"] or "").startswith(tag) or tag in v["value"])

    await outputs.wait_for(lambda: len(letters()) >= len(BAD) + 2, what="dead letters")
    await outputs.wait_for(lambda: len(outputs.values(names.decisions, mine(tag))) >= len(good),
                           what="good decisions")
    await outputs.settle(quiet=1.5)
    by_key = {(d["source_topic"], d["key"]): d for d in letters()}
    for i, (payload, error) in enumerate(BAD):
        letter = by_key[(names.cancellations, f"{tag}-bad{i}")]
        assert letter["error"].startswith(error), letter["error"]
        if isinstance(payload, bytes):
            assert letter["value"] == payload.decode("utf-8", errors="replace")
        assert letter["offset"] >= 0 and letter["received_at"]
    assert by_key[(names.applications, f"{tag}-good0")]["error"].startswith("channel")
    assert by_key[(names.deadlines, None)]["error"].startswith("round: 9 is not a round")
    decided = sorted(d["source_event_id"] for d in outputs.values(names.decisions, mine(tag)))
    assert decided == sorted(e["event_id"] for e in good)


async def test_no_large_event_stops_the_stream(
        tag: str, publisher: Publisher, outputs: OutputReader, names: TopicNames) -> None:
    """Events of 1 and 5 MiB, on and off their customer's partition: their padding is
    a field beyond the schema, so off their partition they move to it as parsed, and
    are decided like the others. A malformed event under a 2 MiB key goes to the
    dead letters with its key truncated. An ordinary event after them is decided."""
    big = []
    for label, size in (("1m", 1 << 20), ("5m", 5 << 20)):
        for where in ("home", "off"):
            event = cancellation_dict(f"{tag}-{label}-{where}", padding="x" * size)
            home = partition_for(event["customer_id"], PARTITIONS)
            partition = home if where == "home" else (home + 1) % PARTITIONS
            await publisher.send(names.cancellations, event, partition=partition)
            big.append(event)
    await publisher.send(names.cancellations, b"{not json", key=tag + "k" * (2 << 20))
    normal = cancellation_dict(f"{tag}-normal")
    await publisher.send(names.cancellations, normal)

    def letters() -> list[dict]:
        return outputs.values(names.dead_letter, lambda v: (v["key"] or "").startswith(tag))

    await outputs.wait_for(lambda: len(outputs.values(names.decisions, mine(tag))) >= 5
                           and letters(), timeout=120, what="decisions and the dead letter")
    await outputs.settle(quiet=1.5)
    decided = [d["customer_id"] for d in outputs.values(names.decisions, mine(tag))]
    assert sorted(decided) == sorted(e["customer_id"] for e in [*big, normal])
    [letter] = letters()
    assert "key truncated from 2097" in letter["error"] and len(letter["key"]) == 1024
