"""Delivery receipts from the gateways: a failed task falls back once to the other
channel; a second failure is recorded, never retried."""

from datetime import datetime

from rules.customer import Effects
from rules.messages import guidance
from rules.program import Program
from rules.reminders import Recipient
from schemas.events import DeliveryReceipt
from schemas.state import CustomerState, Delivery


class UnknownNotification(ValueError):
    """A receipt for a task this customer was never sent."""


def other_channel(state: CustomerState, delivery: Delivery) -> Recipient | None:
    contact = state.cancellation.contact if state.cancellation else None
    if contact is None:
        return None
    if delivery.channel == "sms" and contact.email:
        return Recipient("email", contact.email)
    if delivery.channel == "email" and contact.phone:
        return Recipient("sms", contact.phone)
    return None


def on_receipt(state: CustomerState | None, receipt: DeliveryReceipt, program: Program,
               now: datetime) -> Effects:
    if state is None or receipt.notification_id not in state.deliveries:
        raise UnknownNotification(f"notification_id: {receipt.notification_id} was never "
                                  f"sent to customer {receipt.customer_id}")
    if receipt.event_id in state.seen_event_ids:
        return Effects(state=state)
    delivery = state.deliveries[receipt.notification_id]
    updated = delivery.model_copy(update={"status": receipt.status, "reason": receipt.reason})
    deliveries = {**state.deliveries, receipt.notification_id: updated}
    effects = Effects(state=state, changed=True)
    failed = receipt.status != "delivered"
    if failed and delivery.fallback_for is None and not delivery.fallback_sent:
        recipient = other_channel(state, delivery)
        if recipient is not None:
            sent = state.rounds_sent[delivery.round]
            task = guidance(state, delivery.round, max(now, sent.send_after), recipient,
                            program, now, fallback=True)
            effects.notifications.append(task)
            deliveries[receipt.notification_id] = updated.model_copy(
                update={"fallback_sent": True})
            deliveries[task.notification_id] = Delivery(
                round=delivery.round, channel=recipient.channel,
                fallback_for=receipt.notification_id)
    if failed and not effects.notifications:
        effects.final_failures.append(delivery.round)
    effects.state = state.model_copy(update={
        "deliveries": deliveries,
        "seen_event_ids": [*state.seen_event_ids, receipt.event_id]})
    return effects
