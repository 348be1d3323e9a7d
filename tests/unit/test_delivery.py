import json
from datetime import datetime

import pytest

from rules.customer import on_cancellation, on_round
from rules.delivery import UnknownNotification, on_receipt
from rules.messages import notification_id
from rules.program import load_program
from schemas import DeliveryReceipt
from streams.codec import BadMessage, parse
from tests.factories import cancellation

PROGRAM = load_program()
NOW = datetime.fromisoformat("2026-01-21T22:00:00+09:00")
ROUND_AT = datetime.fromisoformat("2026-01-21T10:00:00+09:00")


def sent(**contact):
    base = {"name": "김민수", "phone": "010-1234-5678", "email": "minsu@example.com",
            "preferred_channel": "sms"}
    base.update(contact)
    state = on_cancellation(None, cancellation("C5", contact=base), 0, PROGRAM, NOW).state
    return on_round(state, 1, ROUND_AT, PROGRAM, NOW)


def receipt(nid: str, status: str, reason: str | None = "handset off", n: int = 0):
    return DeliveryReceipt(event_id=f"r-{nid}-{status}-{n}", customer_id="C5",
                           notification_id=nid, status=status, reason=reason)


def test_round_task_is_tracked_pending() -> None:
    effects = sent()
    nid = effects.notifications[0].notification_id
    assert effects.state.deliveries[nid].status == "pending"


def test_delivered_is_recorded() -> None:
    state = sent().state
    nid = notification_id("C5", 1)
    after = on_receipt(state, receipt(nid, "delivered", None), PROGRAM, NOW)
    assert after.state.deliveries[nid].status == "delivered" and not after.notifications


@pytest.mark.parametrize(("preferred", "fallback"), [("sms", "email"), ("email", "sms")])
def test_failure_falls_back_once_to_the_other_channel(preferred: str, fallback: str) -> None:
    state = sent(preferred_channel=preferred).state
    first = notification_id("C5", 1)
    after = on_receipt(state, receipt(first, "failed"), PROGRAM, NOW)
    [task] = after.notifications
    assert (task.channel, task.round) == (fallback, 1)
    assert task.notification_id == notification_id("C5", 1, fallback=True) != first
    assert task.send_after == datetime.fromisoformat("2026-01-22T09:00:00+09:00")
    assert "184,000원" in task.body
    # the fallback fails too: recorded and counted, nothing more is sent
    again = on_receipt(after.state, receipt(task.notification_id, "rejected"), PROGRAM, NOW)
    assert not again.notifications and again.final_failures == [1]
    assert again.state.deliveries[task.notification_id].status == "rejected"
    # a second failure report on the first task sends nothing either
    twice = on_receipt(again.state, receipt(first, "failed", n=1), PROGRAM, NOW)
    assert not twice.notifications


def test_no_other_channel_is_a_final_failure() -> None:
    state = sent(email=None).state
    after = on_receipt(state, receipt(notification_id("C5", 1), "failed"), PROGRAM, NOW)
    assert not after.notifications and after.final_failures == [1]


def test_redelivered_receipt_changes_nothing() -> None:
    state = sent().state
    r = receipt(notification_id("C5", 1), "failed")
    after = on_receipt(state, r, PROGRAM, NOW)
    again = on_receipt(after.state, r, PROGRAM, NOW)
    assert not again.changed and not again.notifications


def test_unknown_notification_is_refused() -> None:
    with pytest.raises(UnknownNotification, match=r"^notification_id"):
        on_receipt(sent().state, receipt("nope", "delivered", None), PROGRAM, NOW)
    with pytest.raises(UnknownNotification):
        on_receipt(None, receipt("nope", "delivered", None), PROGRAM, NOW)


def test_failed_receipt_needs_a_reason() -> None:
    raw = json.dumps({"event_id": "r1", "customer_id": "C5", "notification_id": "x",
                      "status": "failed"}).encode()
    with pytest.raises(BadMessage, match=r"^reason: required when status is failed"):
        parse(DeliveryReceipt, raw)
