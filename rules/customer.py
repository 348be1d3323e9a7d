"""One customer's journey as pure state transitions.

Each function takes the customer's state (or None) and one event, and returns
the new state with the records to publish. The stream agent only does I/O
around these; every outcome can be tested without a broker.
"""

from dataclasses import dataclass, field
from datetime import datetime

from rules.eligibility import eligibility_reason
from rules.messages import guidance
from rules.program import Program
from rules.refunds import resolve_application
from rules.reminders import choose_recipient, round_due
from schemas.events import Application, Cancellation
from schemas.outputs import ChoiceResult, Decision, Notification, Refund, RewardGrant
from schemas.state import CustomerState, Delivery, SentRound


@dataclass
class Effects:
    state: CustomerState
    changed: bool = False
    decisions: list[Decision] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    unreachable_rounds: list[int] = field(default_factory=list)
    # Rounds whose delivery failed for good (no other channel, or the fallback failed).
    final_failures: list[int] = field(default_factory=list)
    grants: list[RewardGrant] = field(default_factory=list)
    choices: list[ChoiceResult] = field(default_factory=list)


def _fresh(state: CustomerState | None, customer_id: str, partition: int) -> CustomerState:
    if state is None:
        return CustomerState(customer_id=customer_id, partition=partition)
    return state.model_copy(update={"partition": partition})


def _keep_refund(current: Refund | None, new: Refund) -> Refund:
    """A scheduled refund is never replaced by a later rejection."""
    if current is not None and current.status == "scheduled":
        return current
    return new


def _resolve(state: CustomerState, applications: list[Application], program: Program) -> Effects:
    assert state.decision is not None and state.cancellation is not None
    cancelled_on = program.local_date(state.cancellation.cancelled_at)
    refund = state.refund
    out: list[Refund] = []
    for application in applications:
        scheduled = refund if refund is not None and refund.status == "scheduled" else None
        record = resolve_application(application, state.decision, cancelled_on, scheduled, program)
        out.append(record)
        refund = _keep_refund(refund, record)
    state = state.model_copy(update={"refund": refund, "pending_applications": []})
    return Effects(state=state, changed=True, refunds=out)


def on_cancellation(
    state: CustomerState | None,
    event: Cancellation,
    partition: int,
    program: Program,
    now: datetime,
) -> Effects:
    """Decide eligibility; resolve any application that arrived first."""
    if state is not None and event.event_id in state.seen_event_ids:
        return Effects(state=state)
    state = _fresh(state, event.customer_id, partition)
    reason = eligibility_reason(event, program)
    eligible = reason == "eligible"
    decision = Decision(
        customer_id=event.customer_id,
        eligible=eligible,
        reason=reason,
        penalty_krw=event.penalty_krw,
        refund_krw=event.penalty_krw if eligible else 0,
        source_event_id=event.event_id,
        decided_at=now,
    )
    state = state.model_copy(
        update={
            "cancellation": event,
            "decision": decision,
            "seen_event_ids": [*state.seen_event_ids, event.event_id],
        }
    )
    effects = _resolve(state, state.pending_applications, program)
    effects.decisions.append(decision)
    return effects


def on_application(
    state: CustomerState | None,
    event: Application,
    partition: int,
    program: Program,
) -> Effects:
    """Schedule or reject a refund; keep it pending until the cancellation arrives."""
    if state is not None and event.event_id in state.seen_event_ids:
        return Effects(state=state)
    state = _fresh(state, event.customer_id, partition)
    state = state.model_copy(update={"seen_event_ids": [*state.seen_event_ids, event.event_id]})
    if state.decision is None:
        pending = [*state.pending_applications, event]
        return Effects(state=state.model_copy(update={"pending_applications": pending}),
                       changed=True)
    return _resolve(state, [event], program)


def on_round(
    state: CustomerState,
    round_no: int,
    round_at: datetime,
    program: Program,
    now: datetime,
) -> Effects:
    """Guidance round `round_no` reaches this customer: one task, or none."""
    due = round_due(state, round_no)
    if due == "not_due":
        return Effects(state=state)
    if due == "unreachable":
        if round_no in state.unreachable_rounds:
            return Effects(state=state)
        rounds = [*state.unreachable_rounds, round_no]
        return Effects(state=state.model_copy(update={"unreachable_rounds": rounds}),
                       changed=True, unreachable_rounds=[round_no])
    contact = state.cancellation.contact if state.cancellation else None
    recipient = choose_recipient(contact)
    assert recipient is not None
    task = guidance(state, round_no, round_at, recipient, program, now)
    sent = SentRound(notification_id=task.notification_id, channel=task.channel,
                     send_after=task.send_after)
    delivery = Delivery(round=round_no, channel=task.channel)
    state = state.model_copy(update={
        "rounds_sent": {**state.rounds_sent, round_no: sent},
        "deliveries": {**state.deliveries, task.notification_id: delivery}})
    return Effects(state=state, changed=True, notifications=[task])
