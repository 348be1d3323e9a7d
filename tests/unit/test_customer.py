"""A customer's journey through the pure transitions, in and out of order."""

from datetime import datetime

from rules.customer import on_application, on_cancellation, on_round
from rules.program import load_program
from tests.factories import application, cancellation

PROGRAM = load_program()
NOW = datetime.fromisoformat("2026-01-21T10:00:00+09:00")


def test_duplicate_cancellation_event_changes_nothing() -> None:
    event = cancellation()
    first = on_cancellation(None, event, 2, PROGRAM, NOW)
    again = on_cancellation(first.state, event, 2, PROGRAM, NOW)
    assert len(first.decisions) == 1 and first.state.partition == 2
    assert not again.changed and not again.decisions and again.state == first.state


def test_decision_fields() -> None:
    decision = on_cancellation(None, cancellation(penalty_krw=99000), 0, PROGRAM,
                               NOW).decisions[0]
    assert (decision.eligible, decision.reason, decision.penalty_krw, decision.refund_krw) == (
        True, "eligible", 99000, 99000)
    refused = on_cancellation(None, cancellation(line_type="iot"), 0, PROGRAM, NOW).decisions[0]
    assert (refused.eligible, refused.reason, refused.refund_krw) == (False, "iot", 0)


def test_distinct_second_cancellation_gets_its_own_decision() -> None:
    first = on_cancellation(None, cancellation(), 0, PROGRAM, NOW)
    second = on_cancellation(first.state, cancellation(line_type="mvno"), 0, PROGRAM, NOW)
    assert second.decisions[0].reason == "mvno"
    assert second.state.decision == second.decisions[0]


def test_application_before_cancellation_is_kept_then_resolved() -> None:
    pending = on_application(None, application(), 0, PROGRAM)
    assert pending.changed and not pending.refunds
    assert len(pending.state.pending_applications) == 1
    resolved = on_cancellation(pending.state, cancellation(), 0, PROGRAM, NOW)
    assert [r.status for r in resolved.refunds] == ["scheduled"]
    assert resolved.refunds[0].payout_date.isoformat() == "2026-01-22"
    assert resolved.state.pending_applications == []
    assert resolved.state.refund == resolved.refunds[0]


def test_two_applications_before_cancellation() -> None:
    state = on_application(None, application(), 0, PROGRAM).state
    state = on_application(state, application(applied_at="2026-01-20T10:00:00+09:00"), 0,
                           PROGRAM).state
    resolved = on_cancellation(state, cancellation(), 0, PROGRAM, NOW)
    assert [(r.status, r.reason) for r in resolved.refunds] == [("scheduled", None),
                                                                ("rejected", "already_applied")]


def test_pending_application_of_ineligible_customer_is_rejected() -> None:
    state = on_application(None, application(), 0, PROGRAM).state
    resolved = on_cancellation(state, cancellation(termination="involuntary"), 0, PROGRAM, NOW)
    assert [(r.status, r.reason) for r in resolved.refunds] == [("rejected", "not_eligible")]


def test_duplicate_application_event_changes_nothing() -> None:
    state = on_cancellation(None, cancellation(), 0, PROGRAM, NOW).state
    event = application()
    first = on_application(state, event, 0, PROGRAM)
    again = on_application(first.state, event, 0, PROGRAM)
    assert len(first.refunds) == 1 and not again.refunds and not again.changed


def test_application_after_round_stops_later_rounds() -> None:
    state = on_cancellation(None, cancellation(), 0, PROGRAM, NOW).state
    r1 = on_round(state, 1, NOW, PROGRAM, NOW)
    assert len(r1.notifications) == 1
    applied = on_application(r1.state, application(applied_at="2026-01-22T10:00:00+09:00"), 0,
                             PROGRAM)
    assert applied.refunds[0].payout_date.isoformat() == "2026-02-05"
    r2 = on_round(applied.state, 2, NOW, PROGRAM, NOW)
    assert not r2.notifications and not r2.changed
    assert list(applied.state.rounds_sent) == [1]


def test_round_redelivered_sends_nothing_twice() -> None:
    state = on_cancellation(None, cancellation(), 0, PROGRAM, NOW).state
    first = on_round(state, 1, NOW, PROGRAM, NOW)
    again = on_round(first.state, 1, NOW, PROGRAM, NOW)
    assert len(first.notifications) == 1 and not again.notifications


def test_cancellation_after_a_round_does_not_receive_that_round_later() -> None:
    """Rounds are moments: a customer decided after round 1 ran is due from round 2 on."""
    state = on_cancellation(None, cancellation(), 0, PROGRAM, NOW).state
    assert 1 not in state.rounds_sent
    r2 = on_round(state, 2, NOW, PROGRAM, NOW)
    assert [n.round for n in r2.notifications] == [2]
