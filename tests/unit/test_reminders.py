from datetime import datetime

import pytest

from rules.customer import on_application, on_cancellation, on_round
from rules.program import SendWindow, load_program
from rules.reminders import choose_recipient, round_due, send_after
from schemas import Contact
from tests.factories import application, cancellation

PROGRAM = load_program()
NOW = datetime.fromisoformat("2026-01-21T10:00:00+09:00")
ROUND_AT = NOW


def decided(**fields):
    return on_cancellation(None, cancellation(**fields), 0, PROGRAM, NOW).state


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        ({"phone": "010-1111-2222", "email": "a@b.kr", "preferred_channel": "email"},
         ("email", "a@b.kr")),
        ({"phone": "010-1111-2222", "email": "a@b.kr", "preferred_channel": "sms"},
         ("sms", "010-1111-2222")),
        ({"phone": "010-1111-2222", "email": "a@b.kr", "preferred_channel": None},
         ("sms", "010-1111-2222")),
        ({"phone": None, "email": "a@b.kr", "preferred_channel": "sms"}, ("email", "a@b.kr")),
        ({"phone": "010-1111-2222", "email": None, "preferred_channel": "email"},
         ("sms", "010-1111-2222")),
        ({"phone": "", "email": "a@b.kr"}, ("email", "a@b.kr")),
        ({"phone": None, "email": None, "preferred_channel": "sms"}, None),
    ],
)
def test_channel_rule(contact: dict, expected: tuple | None) -> None:
    recipient = choose_recipient(Contact.model_validate(contact))
    assert (None if recipient is None else (recipient.channel, recipient.to)) == expected


def test_eligible_unapplied_customer_is_due_every_round_once() -> None:
    state = decided()
    for round_no in (1, 2, 3):
        assert round_due(state, round_no) == "send"
        state = on_round(state, round_no, ROUND_AT, PROGRAM, NOW).state
        assert round_due(state, round_no) == "not_due"


@pytest.mark.parametrize(
    "fields",
    [{"line_type": "mvno"}, {"termination": "involuntary"}, {"penalty_krw": 0},
     {"cancelled_at": "2026-01-14T00:00:00+09:00"}],
)
def test_not_due_without_eligible_refund(fields: dict) -> None:
    assert round_due(decided(**fields), 1) == "not_due"


def test_scheduled_refund_stops_reminders_but_a_rejection_does_not() -> None:
    state = decided()
    early = on_application(state, application(applied_at="2026-01-10T10:00:00+09:00"), 0, PROGRAM)
    assert early.refunds[0].reason == "outside_application_window"
    assert round_due(early.state, 1) == "send"
    scheduled = on_application(early.state, application(), 0, PROGRAM)
    assert scheduled.refunds[0].status == "scheduled"
    assert round_due(scheduled.state, 1) == "not_due"


def test_customer_without_contact_is_unreachable_once_per_round() -> None:
    state = decided(contact={"name": "김민수", "phone": None, "email": None})
    first = on_round(state, 1, ROUND_AT, PROGRAM, NOW)
    assert first.unreachable_rounds == [1] and not first.notifications
    again = on_round(first.state, 1, ROUND_AT, PROGRAM, NOW)
    assert not again.changed and not again.unreachable_rounds
    no_contact = decided(contact=None)
    assert round_due(no_contact, 2) == "unreachable"


def test_pending_application_without_cancellation_is_never_due() -> None:
    state = on_application(None, application(), 0, PROGRAM).state
    assert round_due(state, 1) == "not_due"


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-01-21T10:00:00+09:00", "2026-01-21T10:00:00+09:00"),
        ("2026-01-21T08:59:59+09:00", "2026-01-21T09:00:00+09:00"),
        ("2026-01-21T09:00:00+09:00", "2026-01-21T09:00:00+09:00"),
        ("2026-01-21T19:59:59+09:00", "2026-01-21T19:59:59+09:00"),
        ("2026-01-21T20:00:00+09:00", "2026-01-22T09:00:00+09:00"),
        ("2026-01-21T23:30:00+09:00", "2026-01-22T09:00:00+09:00"),
        ("2026-01-21T12:00:00Z", "2026-01-22T09:00:00+09:00"),  # 21:00 in Seoul
        ("2026-01-20T23:00:00Z", "2026-01-21T09:00:00+09:00"),  # 08:00 in Seoul
    ],
)
def test_send_window(moment: str, expected: str) -> None:
    result = send_after(datetime.fromisoformat(moment), PROGRAM)
    assert result == datetime.fromisoformat(expected)
    assert result.utcoffset() is not None


def test_send_window_is_configuration() -> None:
    late = PROGRAM.with_send_window(SendWindow.parse("12:00-13:00"))
    assert send_after(NOW, late) == datetime.fromisoformat("2026-01-21T12:00:00+09:00")
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        SendWindow.parse("9 to 5")
    with pytest.raises(ValueError, match="start must be before end"):
        SendWindow.parse("20:00-09:00")
