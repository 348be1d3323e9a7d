"""The reward program end to end: snapshots, the reward notice, OTT choices."""

import aiohttp
import pytest

from rules.rewards import _id
from streams.reader import OutputReader
from streams.settings import Settings
from streams.topics import TopicNames
from tests.conftest import API_TOKEN, PARTITIONS, Publisher
from tests.factories import cancellation_dict

pytestmark = pytest.mark.integration


def snapshot(customer: str, status: str, line: str = "postpaid",
             as_of: str = "2026-01-10T12:00:00+09:00", **contact) -> dict:
    return {"event_id": f"s-{customer}-{status}-{as_of}", "customer_id": customer,
            "line_type": line, "status": status, "as_of": as_of,
            "contact": {"name": "박서연", "phone": "010-3333-4444", "email": None, **contact}}


async def test_reward_program(tag: str, publisher: Publisher, outputs: OutputReader,
                              names: TopicNames, settings: Settings) -> None:
    stay, prepaid, mvno, left, late_change = (f"{tag}-{n}" for n in
                                              ("stay", "pre", "mvno", "left", "late"))
    await publisher.send_all(names.subscribers, [
        snapshot(stay, "active", email="s@example.com", phone=None),
        snapshot(prepaid, "active", "prepaid"),
        snapshot(mvno, "active", "mvno"),
        snapshot(left, "active"),
        snapshot(late_change, "active"),
        snapshot(late_change, "cancelled", as_of="2026-01-14T09:00:00+09:00"),
    ])
    await publisher.send(names.cancellations, cancellation_dict(
        left, cancelled_at="2026-01-05T10:00:00+09:00"))
    await outputs.wait_for(lambda: outputs.values(
        names.decisions, lambda v: v["customer_id"] == left), what="decision")
    # choices before the notice: validated against eligibility at that moment
    await publisher.send_all(names.reward_choices, [
        {"event_id": f"{tag}-o1", "customer_id": stay, "service": "OTT-B"},
        {"event_id": f"{tag}-o2", "customer_id": stay, "service": "OTT-A"},
        {"event_id": f"{tag}-o3", "customer_id": mvno, "service": "OTT-A"},
        {"event_id": f"{tag}-o4", "customer_id": prepaid, "service": "Netflux"},
    ])
    await publisher.send(names.deadlines, {"event_id": f"{tag}-rn", "kind": "reward_notice",
                                           "at": "2026-01-20T22:00:00+09:00"}, key=None)
    await outputs.wait_for(lambda: len({p["partition"] for p in outputs.values(
        names.round_progress, lambda v: v["event_id"] == f"{tag}-rn")}) == PARTITIONS,
        what="reward notice on every partition")
    await outputs.wait_for(lambda: len(outputs.values(
        names.reward_choice_results, lambda v: v["customer_id"].startswith(tag))) == 4,
        what="choice results")
    await outputs.settle(quiet=1.5)

    grants: dict[str, list[str]] = {}
    for g in outputs.values(names.rewards, lambda v: v["customer_id"].startswith(tag)):
        grants.setdefault(g["customer_id"], []).append(g["reward"])
    assert grants == {
        stay: ["data_100gb", "roaming_bonus", "ott_voucher", "membership_discount"],
        prepaid: ["roaming_bonus", "ott_voucher", "membership_discount"],
        late_change: ["data_100gb", "roaming_bonus", "ott_voucher", "membership_discount"],
    }
    notices = [t for topic in (names.sms, names.email) for t in outputs.values(
        topic, lambda v: v["customer_id"].startswith(tag) and v.get("kind") == "reward_notice")]
    assert sorted(t["customer_id"] for t in notices) == sorted([stay, prepaid, late_change])
    for t in notices:
        assert t["body"].startswith("(광고)") and "수신거부" in t["body"].splitlines()[-1]
        assert t["send_after"].startswith("2026-01-21T08:00:00")
        assert t["notification_id"] == _id(t["customer_id"], "reward_notice")
    results = {r["choice_event_id"]: (r["status"], r["reason"]) for r in outputs.values(
        names.reward_choice_results, lambda v: v["customer_id"].startswith(tag))}
    assert results == {f"{tag}-o1": ("accepted", None), f"{tag}-o2": ("refused", "already_chosen"),
                       f"{tag}-o3": ("refused", "not_eligible"),
                       f"{tag}-o4": ("refused", "unknown_service")}
    confirms = [t for t in outputs.values(names.email, lambda v: v["customer_id"] == stay
                                          and v.get("kind") == "reward_choice")]
    assert len(confirms) == 1 and "OTT-B" in confirms[0]["body"]

    url = f"http://127.0.0.1:{settings.web_port}/customers/{stay}"
    async with aiohttp.ClientSession() as session, session.get(
            url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as resp:
        body = await resp.json()
    assert body["rewards"]["ott_choice"] == "OTT-B" and len(body["rewards"]["granted"]) == 4
