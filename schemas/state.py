"""Per-customer state kept in the Faust table, keyed by customer_id."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import Application, Cancellation, Channel, Contact, Subscriber
from schemas.outputs import Decision, Refund


class SentRound(BaseModel):
    model_config = ConfigDict(frozen=True)

    notification_id: str
    channel: Channel
    send_after: datetime


class Delivery(BaseModel):
    """What the gateways reported for one task of this customer."""

    round: int
    channel: Channel
    status: Literal["pending", "delivered", "failed", "rejected"] = "pending"
    reason: str | None = None
    fallback_for: str | None = None  # the failed task this one replaces
    fallback_sent: bool = False


class CustomerState(BaseModel):
    customer_id: str
    # Partition of the customer's events, where its state lives. Required, so that
    # the stored JSON, which leaves defaults out, always has it.
    partition: int
    cancellation: Cancellation | None = None
    decision: Decision | None = None
    # Applications that arrived before any cancellation, resolved later.
    pending_applications: list[Application] = Field(default_factory=list)
    refund: Refund | None = None
    rounds_sent: dict[int, SentRound] = Field(default_factory=dict)
    # Rounds in which the customer was due but had neither phone nor e-mail.
    unreachable_rounds: list[int] = Field(default_factory=list)
    # Reward program: the latest line status at or before the cut-off, the latest
    # contact from any snapshot, what was granted, the OTT choice.
    subscription: Subscriber | None = None
    subscriber_contact: Contact | None = None
    rewards_granted: list[str] = Field(default_factory=list)
    reward_notice: SentRound | None = None
    ott_choice: str | None = None
    # Delivery of every task sent, by notification_id (receipts from the gateways).
    deliveries: dict[str, Delivery] = Field(default_factory=dict)
    # Every cancellation/application/receipt event_id applied, for idempotency.
    seen_event_ids: list[str] = Field(default_factory=list)
