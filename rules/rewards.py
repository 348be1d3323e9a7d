"""The loyalty reward program: who gets which reward, the reward notice (an
advertisement), and the OTT choice.

Rules (program file, [rewards]): the latest line status at or before the end of
the cut-off day decides; MVNO lines and lines cancelled on or before the cut-off
get nothing; each reward may exclude line types and statuses.
"""

from datetime import datetime

from rules.customer import Effects
from rules.messages import clean_text, render, sms_type, task_id
from rules.program import Program
from rules.reminders import Recipient, choose_recipient, send_after
from schemas.events import Contact, RewardChoice, Subscriber
from schemas.outputs import ChoiceResult, Notification, RewardGrant
from schemas.state import CustomerState, SentRound

REWARD_LABELS = {
    "data_100gb": "매월 데이터 100GB",
    "roaming_bonus": "로밍 데이터 50% 추가",
    "ott_voucher": "OTT 이용권",
    "membership_discount": "제휴 멤버십 할인",
}


def on_subscriber(state: CustomerState | None, event: Subscriber, partition: int,
                  program: Program) -> Effects:
    """Keep the latest snapshot at or before the cut-off, and the latest contact."""
    if state is not None and event.event_id in state.seen_event_ids:
        return Effects(state=state)
    if state is None:
        state = CustomerState(customer_id=event.customer_id, partition=partition)
    update: dict = {"partition": partition,
                    "seen_event_ids": [*state.seen_event_ids, event.event_id]}
    rules = program.rewards
    assert rules is not None
    if program.local_date(event.as_of) <= rules.cutoff:
        current = state.subscription
        if current is None or event.as_of >= current.as_of:
            update["subscription"] = event
    if event.contact is not None:
        update["subscriber_contact"] = event.contact
    return Effects(state=state.model_copy(update=update), changed=True)


def rewards_for(state: CustomerState, program: Program) -> list[str]:
    """The rewards this customer gets; empty if none."""
    rules = program.rewards
    sub = state.subscription
    if rules is None or sub is None or sub.status not in rules.subscribed_statuses:
        return []
    if sub.line_type in rules.excluded_line_types:
        return []
    cancellation = state.cancellation
    if cancellation is not None and program.local_date(cancellation.cancelled_at) <= rules.cutoff:
        return []  # a line that cancels by the cut-off gets no reward
    return [name for name, grant in rules.grants.items()
            if sub.line_type not in grant.excluded_line_types
            and sub.status not in grant.excluded_statuses]


def _id(customer_id: str, what: str) -> str:
    return task_id(f"{customer_id}/{what}")


def _message(state: CustomerState, recipient: Recipient, template: str, kind: str,
             context: dict, at: datetime, program: Program, now: datetime,
             advertising: bool) -> Notification:
    rules = program.rewards
    assert rules is not None
    window_program = program.with_send_window(rules.send_window) if advertising else program

    def ad(text: str, part: str) -> str:
        if not advertising:
            return text
        if part == "html":
            return f"<p>{rules.advertising_prefix}</p>\n{text}\n<p>{rules.opt_out_line}</p>"
        return f"{rules.advertising_prefix} {text}\n{rules.opt_out_line}"

    common = {"notification_id": _id(state.customer_id, kind), "customer_id": state.customer_id,
              "round": 0, "channel": recipient.channel, "to": recipient.to,
              "template": template, "send_after": send_after(at, window_program),
              "created_at": now, "kind": kind}
    if recipient.channel == "sms":
        body = ad(render(template, "sms", context), "sms")
        return Notification(**common, body=body, message_type=sms_type(body))
    subject = render(template, "subject", context)
    return Notification(**common, subject=f"{rules.advertising_prefix} {subject}"
                        if advertising else subject,
                        body=ad(render(template, "txt", context), "txt"),
                        html=ad(render(template, "html", context), "html"))


def _contact(state: CustomerState) -> Contact | None:
    return state.subscriber_contact or (state.cancellation.contact if state.cancellation
                                        else None)


def on_reward_notice(state: CustomerState, at: datetime, program: Program,
                     now: datetime) -> Effects:
    """Grant the rewards (once) and send one reward notice."""
    rules = program.rewards
    rewards = rewards_for(state, program)
    if rules is None or not rewards or state.rewards_granted:
        return Effects(state=state)
    grants = [RewardGrant(customer_id=state.customer_id, reward=name,
                          months=rules.grants[name].months,
                          valid_from=rules.grants[name].valid_from,
                          valid_until=rules.grants[name].valid_until()) for name in rewards]
    effects = Effects(state=state, changed=True)
    effects.grants = grants
    update: dict = {"rewards_granted": rewards}
    recipient = choose_recipient(_contact(state))
    if recipient is None:
        effects.unreachable_rounds.append(0)
    else:
        contact = _contact(state)
        context = {"name": clean_text(contact.name if contact else None, fallback="고객"),
                   "carrier": program.carrier_name,
                   "rewards": [REWARD_LABELS.get(r, r) for r in rewards],
                   "ott_services": list(rules.ott_services),
                   "roaming_until": rules.grants["roaming_bonus"].valid_until()
                   if "roaming_bonus" in rewards else None}
        task = _message(state, recipient, rules.notice_template, "reward_notice", context, at,
                        program, now, advertising=rules.advertising)
        effects.notifications.append(task)
        update["reward_notice"] = SentRound(notification_id=task.notification_id,
                                            channel=task.channel, send_after=task.send_after)
    effects.state = state.model_copy(update=update)
    return effects


def on_choice(state: CustomerState | None, event: RewardChoice, partition: int,
              program: Program, now: datetime) -> Effects:
    """Accept the first valid OTT choice and confirm it; refuse anything else."""
    if state is not None and event.event_id in state.seen_event_ids:
        return Effects(state=state)
    if state is None:
        state = CustomerState(customer_id=event.customer_id, partition=partition)
    rules = program.rewards
    seen = [*state.seen_event_ids, event.event_id]

    def result(status: str, reason: str | None = None) -> ChoiceResult:
        return ChoiceResult(customer_id=event.customer_id, choice_event_id=event.event_id,
                            status=status, service=event.service, reason=reason)  # type: ignore[arg-type]

    effects = Effects(state=state.model_copy(update={"seen_event_ids": seen}), changed=True)
    if rules is None or "ott_voucher" not in rewards_for(state, program):
        effects.choices.append(result("refused", "not_eligible"))
    elif event.service not in rules.ott_services:
        effects.choices.append(result("refused", "unknown_service"))
    elif state.ott_choice is not None:
        effects.choices.append(result("refused", "already_chosen"))
    else:
        effects.choices.append(result("accepted"))
        effects.state = effects.state.model_copy(update={"ott_choice": event.service})
        recipient = choose_recipient(_contact(state))
        if recipient is not None:
            contact = _contact(state)
            context = {"name": clean_text(contact.name if contact else None, fallback="고객"),
                       "carrier": program.carrier_name, "service": event.service,
                       "valid_from": rules.grants["ott_voucher"].valid_from,
                       "valid_until": rules.grants["ott_voucher"].valid_until()}
            effects.notifications.append(_message(
                state, recipient, rules.confirmation_template, "reward_choice", context, now,
                program, now, advertising=False))
    return effects
