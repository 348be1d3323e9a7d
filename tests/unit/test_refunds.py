from datetime import UTC, date, datetime

import pytest

from rules.program import load_program
from rules.refunds import payout_date, resolve_application
from schemas import Decision
from tests.factories import application

PROGRAM = load_program()
CANCELLED = date(2026, 1, 5)


def decision(eligible: bool = True, refund: int = 184000) -> Decision:
    return Decision(customer_id="C1", eligible=eligible,
                    reason="eligible" if eligible else "mvno", penalty_krw=184000,
                    refund_krw=refund if eligible else 0, source_event_id="c-1",
                    decided_at=datetime(2026, 1, 6, tzinfo=UTC))


@pytest.mark.parametrize(
    ("applied", "paid"),
    [
        ("2026-01-14", "2026-01-22"),
        ("2026-01-15", "2026-01-22"),
        ("2026-01-16", "2026-02-05"),
        ("2026-01-29", "2026-02-05"),
        ("2026-01-30", "2026-02-19"),
        ("2026-01-31", "2026-02-19"),
    ],
)
def test_payout_batch_edges(applied: str, paid: str) -> None:
    assert payout_date(date.fromisoformat(applied), CANCELLED, PROGRAM) == date.fromisoformat(paid)


@pytest.mark.parametrize(
    ("applied_at", "status", "reason", "paid"),
    [
        ("2026-01-13T23:59:59+09:00", "rejected", "outside_application_window", None),
        ("2026-01-13T15:00:00Z", "scheduled", None, "2026-01-22"),  # 01-14 00:00 Seoul
        ("2026-01-14T00:00:00+09:00", "scheduled", None, "2026-01-22"),
        ("2026-01-15T14:59:59Z", "scheduled", None, "2026-01-22"),  # still 01-15 in Seoul
        ("2026-01-15T15:00:00Z", "scheduled", None, "2026-02-05"),  # 01-16 in Seoul
        ("2026-01-31T23:59:59+09:00", "scheduled", None, "2026-02-19"),
        ("2026-01-31T15:00:00Z", "rejected", "outside_application_window", None),
        ("2026-02-01T00:00:00+09:00", "rejected", "outside_application_window", None),
    ],
)
def test_application_window_edges(applied_at: str, status: str, reason: str | None,
                                  paid: str | None) -> None:
    refund = resolve_application(application(applied_at=applied_at), decision(), CANCELLED, None,
                                 PROGRAM)
    assert (refund.status, refund.reason) == (status, reason)
    assert refund.payout_date == (date.fromisoformat(paid) if paid else None)
    assert refund.refund_krw == (184000 if status == "scheduled" else 0)


def test_ineligible_customer_is_rejected() -> None:
    refund = resolve_application(application(), decision(eligible=False), CANCELLED, None, PROGRAM)
    assert (refund.status, refund.reason, refund.refund_krw) == ("rejected", "not_eligible", 0)


def test_zero_penalty_has_nothing_to_refund() -> None:
    refund = resolve_application(application(), decision(refund=0), CANCELLED, None, PROGRAM)
    assert refund.reason == "not_eligible"


def test_second_application_schedules_nothing_new() -> None:
    first = resolve_application(application(), decision(), CANCELLED, None, PROGRAM)
    second = resolve_application(application(applied_at="2026-01-20T10:00:00+09:00"), decision(),
                                 CANCELLED, first, PROGRAM)
    assert first.status == "scheduled"
    assert (second.status, second.reason, second.payout_date) == ("rejected", "already_applied",
                                                                   None)
