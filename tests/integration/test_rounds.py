"""Three guidance rounds fanned out over every partition, with applicants in between,
redelivered deadlines and duplicate cancellations: one task per customer per round."""

from collections import Counter
from dataclasses import dataclass

import aiohttp
import pytest

from rules.messages import notification_id
from streams.app import partition_for
from streams.reader import OutputReader
from streams.settings import Settings
from streams.topics import TopicNames
from tests.conftest import API_TOKEN, PARTITIONS, Publisher
from tests.factories import application_dict, cancellation_dict

pytestmark = pytest.mark.integration

ROUND_AT = {1: "2026-01-21T10:00:00+09:00", 2: "2026-01-26T07:30:00+09:00",
            3: "2026-01-29T21:30:00+09:00"}
SEND_AFTER = {1: "2026-01-21T10:00:00+09:00", 2: "2026-01-26T09:00:00+09:00",
              3: "2026-01-30T09:00:00+09:00"}
CONTACTS = {
    "both-sms": ({"phone": "010-1000-0001", "email": "a@example.com",
                  "preferred_channel": "sms"}, "sms"),
    "both-email": ({"phone": "010-1000-0002", "email": "b@example.com",
                    "preferred_channel": "email"}, "email"),
    "phone-only": ({"phone": "010-1000-0003", "email": None, "preferred_channel": "email"},
                   "sms"),
    "email-only": ({"phone": None, "email": "c@example.com", "preferred_channel": "sms"},
                   "email"),
    "no-contact": ({"phone": None, "email": None, "preferred_channel": None}, None),
}


@dataclass
class Customer:
    id: str
    channel: str | None
    eligible: bool = True
    applies_before: int | None = None  # applies before this round (4: after round 3)


@dataclass
class Scenario:
    customers: list[Customer]
    late: list[str]  # cancelled after round 3


def population(tag: str) -> list[Customer]:
    people = []
    for i in range(160):
        kind = list(CONTACTS)[i % len(CONTACTS)]
        people.append(Customer(f"{tag}-{i:03d}", CONTACTS[kind][1],
                               eligible=i % 7 != 0,
                               applies_before=[None, 1, 2, 3, 4][(i // 5) % 5]))
    return people


def contact_of(i: int) -> dict:
    return {"name": f"고객{i}", **CONTACTS[list(CONTACTS)[i % len(CONTACTS)]][0]}


@pytest.fixture(scope="module")
async def scenario(publisher: Publisher, outputs: OutputReader, names: TopicNames) -> Scenario:
    import uuid

    tag = "R" + uuid.uuid4().hex[:8]
    people = population(tag)
    assert {partition_for(c.id, PARTITIONS) for c in people} == set(range(PARTITIONS))
    cancellations = []
    for i, c in enumerate(people):
        event = cancellation_dict(c.id, contact=contact_of(i),
                                  line_type="postpaid" if c.eligible else "iot")
        cancellations.append(event)
        await publisher.send(names.cancellations, event)

    def count(topic: str) -> int:
        return len(outputs.values(topic, lambda v: v["customer_id"].startswith(tag)))

    await outputs.wait_for(lambda: count(names.decisions) == len(people), what="decisions")

    async def apply_before(round_no: int) -> None:
        due = [c for c in people if c.applies_before == round_no]
        before = count(names.refunds)
        for c in due:
            await publisher.send(names.applications, application_dict(c.id))
        await outputs.wait_for(lambda: count(names.refunds) == before + len(due),
                               what=f"refunds before round {round_no}")

    async def fire(round_no: int, *, key: bytes | None, partition: int | None) -> None:
        event_id = f"{tag}-round-{round_no}"
        deadline = {"event_id": event_id, "kind": "guidance_round", "round": round_no,
                    "at": ROUND_AT[round_no]}
        await publisher.send(names.deadlines, deadline, key=key, partition=partition)

        def done() -> bool:
            progress = outputs.values(names.round_progress, lambda v: v["event_id"] == event_id)
            return {p["partition"] for p in progress} == set(range(PARTITIONS))

        await outputs.wait_for(done, what=f"round {round_no} on every partition")

    for round_no in (1, 2, 3):
        await apply_before(round_no)
        # published once, to one partition; round 1 is redelivered
        await fire(round_no, key=None if round_no == 3 else b"x", partition=round_no % 2)
        if round_no == 1:
            await fire(1, key=None, partition=1)
            for event in cancellations[:20]:  # duplicate cancellations mid-program
                await publisher.send(names.cancellations, event)
    await apply_before(4)
    late = [f"{tag}-late{i}" for i in range(8)]
    for customer in late:
        await publisher.send(names.cancellations, cancellation_dict(customer))
    await outputs.wait_for(lambda: count(names.decisions) == len(people) + len(late),
                           what="late decisions")
    await fire(3, key=None, partition=0)  # round 3 redelivered after the late arrivals
    await outputs.settle(quiet=2.0)
    return Scenario(people, late)


def tasks(outputs: OutputReader, names: TopicNames, ids: set[str]) -> list[dict]:
    return [v for topic in (names.sms, names.email)
            for v in outputs.values(topic, lambda v: v["customer_id"] in ids)]


def expected_rounds(c: Customer) -> list[int]:
    if not c.eligible or c.channel is None:
        return []
    return [r for r in (1, 2, 3) if c.applies_before is None or r < c.applies_before]


async def test_each_due_customer_gets_each_round_exactly_once(
        scenario: Scenario, outputs: OutputReader, names: TopicNames) -> None:
    ids = {c.id for c in scenario.customers}
    got = tasks(outputs, names, ids)
    counts = Counter(t["notification_id"] for t in got)
    assert [nid for nid, n in counts.items() if n > 1] == []
    expected = {(c.id, r) for c in scenario.customers for r in expected_rounds(c)}
    assert {(t["customer_id"], t["round"]) for t in got} == expected
    assert len(expected) > 150
    for t in got:
        assert t["notification_id"] == notification_id(t["customer_id"], t["round"])


async def test_round_reaches_every_partition(scenario: Scenario, outputs: OutputReader,
                                             names: TopicNames) -> None:
    ids = {c.id for c in scenario.customers}
    reached = {partition_for(t["customer_id"], PARTITIONS)
               for t in tasks(outputs, names, ids) if t["round"] == 1}
    assert reached == set(range(PARTITIONS))


async def test_channel_rule_and_task_fields(scenario: Scenario, outputs: OutputReader,
                                            names: TopicNames) -> None:
    by_id = {c.id: c for c in scenario.customers}
    got = tasks(outputs, names, set(by_id))
    for t in got:
        c = by_id[t["customer_id"]]
        assert t["channel"] == c.channel
        assert t["send_after"].replace("Z", "+00:00").startswith(SEND_AFTER[t["round"]][:16])
        assert t["template"] == f"guidance_round_{t['round']}"
        assert "1월 31일" in t["body"] and "184,000원" in t["body"]
        if c.channel == "sms":
            assert t["message_type"] in ("SMS", "LMS") and t["to"].startswith("010-")
            assert t["subject"] is None and t["html"] is None
        else:
            assert t["subject"] and t["html"] and "@" in t["to"]
    assert {t["channel"] for t in got} == {"sms", "email"}


async def test_applicants_get_no_later_rounds_and_late_arrivals_none(
        scenario: Scenario, outputs: OutputReader, names: TopicNames) -> None:
    for c in scenario.customers:
        rounds = sorted(t["round"] for t in tasks(outputs, names, {c.id}))
        if c.applies_before is not None:
            assert all(r < c.applies_before for r in rounds), (c, rounds)
    assert tasks(outputs, names, set(scenario.late)) == []


async def test_duplicate_cancellations_make_no_second_decision(
        scenario: Scenario, outputs: OutputReader, names: TopicNames) -> None:
    ids = {c.id for c in scenario.customers}
    decisions = Counter(d["source_event_id"]
                        for d in outputs.values(names.decisions, lambda v: v["customer_id"] in ids))
    assert set(decisions.values()) == {1}
    assert len(decisions) == len(scenario.customers)


async def test_delivery_receipts_fall_back_once_then_stop(
        scenario: Scenario, outputs: OutputReader, names: TopicNames,
        publisher: Publisher, settings: Settings) -> None:
    both = [c for c in scenario.customers if c.eligible and c.applies_before is None
            and c.channel == "sms" and int(c.id[-3:]) % 5 == 0]  # kind both-sms: has e-mail
    phone_only = [c for c in scenario.customers if c.eligible and c.applies_before is None
                  and int(c.id[-3:]) % 5 == 2]
    a, b, c = both[0].id, both[1].id, phone_only[0].id
    first = notification_id(a, 3)

    def receipt(customer: str, nid: str, status: str, n: int = 0) -> dict:
        return {"event_id": f"rcpt-{nid}-{status}-{n}", "customer_id": customer,
                "notification_id": nid, "status": status,
                "reason": None if status == "delivered" else "unreachable handset"}

    await publisher.send(names.delivery_receipts, receipt(a, first, "failed"))
    await publisher.send(names.delivery_receipts, receipt(b, notification_id(b, 3), "delivered"))
    await publisher.send(names.delivery_receipts, receipt(c, notification_id(c, 3), "failed"))
    fallback = notification_id(a, 3, fallback=True)
    await outputs.wait_for(lambda: any(t["notification_id"] == fallback
                                       for t in outputs.values(names.email)), what="fallback")
    [task] = [t for t in outputs.values(names.email) if t["notification_id"] == fallback]
    assert (task["customer_id"], task["round"], task["channel"]) == (a, 3, "email")
    # the fallback fails as well, and the first failure is reported again: nothing more
    await publisher.send(names.delivery_receipts, receipt(a, fallback, "rejected"))
    await publisher.send(names.delivery_receipts, receipt(a, first, "failed", n=1))
    await publisher.send(names.delivery_receipts, receipt(a, "never-sent", "delivered"))
    await outputs.wait_for(lambda: any(d["error"].startswith("notification_id: never-sent")
                                       for d in outputs.values(names.dead_letter)),
                           what="dead letter for an unknown notification")
    await outputs.settle(quiet=1.5)
    for customer in (a, b, c):
        got = [t for t in tasks(outputs, names, {customer}) if t["round"] == 3]
        assert len(got) == (2 if customer == a else 1), customer
    url = f"http://127.0.0.1:{settings.web_port}/customers/{a}"
    async with aiohttp.ClientSession() as session, session.get(
            url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as resp:
        body = await resp.json()
    [r3] = [r for r in body["rounds_sent"] if r["round"] == 3]
    assert r3["delivery"]["status"] == "failed"
    assert r3["delivery"]["fallback"]["status"] == "rejected"
