from datetime import datetime

import pytest

from rules.customer import on_cancellation
from rules.program import load_program
from rules.rewards import on_choice, on_reward_notice, on_subscriber, rewards_for
from schemas import CustomerState
from schemas.events import RewardChoice, Subscriber
from tests.factories import cancellation

PROGRAM = load_program()
NOW = datetime.fromisoformat("2026-01-20T10:00:00+09:00")
NOTICE_AT = datetime.fromisoformat("2026-01-20T22:30:00+09:00")
ALL = ["data_100gb", "roaming_bonus", "ott_voucher", "membership_discount"]
CONTACT = {"name": "김민수", "phone": "010-1234-5678", "email": None}


def snapshot(status: str = "active", line: str = "postpaid",
             as_of: str = "2026-01-10T12:00:00+09:00", n: int = 0,
             contact: dict | None = CONTACT) -> Subscriber:
    return Subscriber(event_id=f"s-{status}-{as_of}-{n}", customer_id="S1", line_type=line,
                      status=status, as_of=datetime.fromisoformat(as_of),
                      contact=contact)


def state_of(*events: Subscriber) -> CustomerState:
    state = None
    for event in events:
        state = on_subscriber(state, event, 1, PROGRAM).state
    assert state is not None
    return state


@pytest.mark.parametrize(("status", "line", "rewards"), [
    ("active", "postpaid", ALL),
    ("active", "prepaid", ["roaming_bonus", "ott_voucher", "membership_discount"]),
    ("active", "iot", ["roaming_bonus", "ott_voucher", "membership_discount"]),
    ("suspended", "postpaid", ["roaming_bonus", "ott_voucher", "membership_discount"]),
    ("active", "mvno", []),
    ("cancelled", "postpaid", []),
])
def test_who_gets_which_reward(status: str, line: str, rewards: list[str]) -> None:
    assert rewards_for(state_of(snapshot(status, line)), PROGRAM) == rewards


def test_latest_status_at_or_before_the_cutoff_wins() -> None:
    # cancelled on the 12th, re-activated at 23:59 Seoul on the 13th: active at the cut-off
    state = state_of(snapshot("active", as_of="2026-01-01T00:00:00+09:00"),
                     snapshot("cancelled", as_of="2026-01-12T10:00:00+09:00"),
                     snapshot("active", as_of="2026-01-13T14:59:00Z"))
    assert rewards_for(state, PROGRAM) == ALL
    # a change after the cut-off (00:30 on the 14th in Seoul) does not count
    later = on_subscriber(state, snapshot("cancelled", as_of="2026-01-13T15:30:00Z"), 1,
                          PROGRAM).state
    assert rewards_for(later, PROGRAM) == ALL
    # snapshots arriving out of order: the latest as_of wins, not the latest arrival
    shuffled = state_of(snapshot("active", as_of="2026-01-11T00:00:00+09:00"),
                        snapshot("suspended", as_of="2026-01-05T00:00:00+09:00"))
    assert "data_100gb" in rewards_for(shuffled, PROGRAM)


def test_a_line_cancelled_in_the_waiver_period_gets_nothing() -> None:
    state = state_of(snapshot())
    cancelled = on_cancellation(state, cancellation("S1", cancelled_at="2026-01-05T10:00:00+09:00"),
                                1, PROGRAM, NOW).state
    assert rewards_for(cancelled, PROGRAM) == []


def test_reward_notice_grants_once_and_is_an_advertisement() -> None:
    effects = on_reward_notice(state_of(snapshot()), NOTICE_AT, PROGRAM, NOW)
    assert [g.reward for g in effects.grants] == ALL
    roaming = next(g for g in effects.grants if g.reward == "roaming_bonus")
    assert (roaming.months, roaming.valid_from, roaming.valid_until) == (6, "2026-03", "2026-08")
    data = next(g for g in effects.grants if g.reward == "data_100gb")
    assert (data.valid_from, data.valid_until) == ("2026-02", "2026-07")
    [task] = effects.notifications
    assert task.kind == "reward_notice" and task.channel == "sms"
    assert task.body.startswith("(광고)")
    assert task.body.rstrip().endswith("무료 수신거부 080-000-0000")
    # never between 21:00 and 08:00: 22:30 moves to 08:00 the next day
    assert task.send_after == datetime.fromisoformat("2026-01-21T08:00:00+09:00")
    again = on_reward_notice(effects.state, NOTICE_AT, PROGRAM, NOW)
    assert not again.changed and not again.grants and not again.notifications


def test_reward_notice_by_email_is_marked_too() -> None:
    state = state_of(snapshot(contact={"name": "김민수", "email": "m@example.com"}))
    [task] = on_reward_notice(state, NOTICE_AT, PROGRAM, NOW).notifications
    assert task.channel == "email" and task.subject.startswith("(광고)")
    assert task.html.startswith("<p>(광고)</p>") and "무료 수신거부" in task.html


def test_unreachable_customer_is_granted_without_a_notice() -> None:
    effects = on_reward_notice(state_of(snapshot(contact=None)), NOTICE_AT, PROGRAM, NOW)
    assert len(effects.grants) == 4 and not effects.notifications
    assert effects.unreachable_rounds == [0]


def choice(service: str, n: int = 0) -> RewardChoice:
    return RewardChoice(event_id=f"o-{service}-{n}", customer_id="S1", service=service)


def test_ott_choice_accepted_once_and_confirmed() -> None:
    state = state_of(snapshot())
    first = on_choice(state, choice("OTT-A"), 1, PROGRAM, NOW)
    assert [(c.status, c.reason) for c in first.choices] == [("accepted", None)]
    [confirm] = first.notifications
    assert confirm.kind == "reward_choice" and "OTT-A" in confirm.body
    assert not confirm.body.startswith("(광고)")
    second = on_choice(first.state, choice("OTT-B"), 1, PROGRAM, NOW)
    assert [(c.status, c.reason) for c in second.choices] == [("refused", "already_chosen")]
    assert not second.notifications and second.state.ott_choice == "OTT-A"


@pytest.mark.parametrize(("events", "service", "reason"), [
    ([snapshot()], "Netflux", "unknown_service"),
    ([snapshot("active", "mvno")], "OTT-A", "not_eligible"),
    ([], "OTT-A", "not_eligible"),
])
def test_ott_choice_refusals(events: list, service: str, reason: str) -> None:
    state = state_of(*events) if events else None
    effects = on_choice(state, choice(service), 1, PROGRAM, NOW)
    assert [(c.status, c.reason) for c in effects.choices] == [("refused", reason)]
