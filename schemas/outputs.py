"""Output records consumed by gateways, dashboards and refund systems."""

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.events import Channel

DecisionReason = Literal[
    "eligible",
    "cancelled_outside_period",
    "mvno",
    "iot",
    "involuntary_termination",
    "recent_contract_change",
]
RefundRejection = Literal["not_eligible", "outside_application_window", "already_applied"]


class Output(BaseModel):
    model_config = ConfigDict(frozen=True)


class Decision(Output):
    customer_id: str
    eligible: bool
    reason: DecisionReason
    penalty_krw: int
    refund_krw: int
    source_event_id: str
    decided_at: datetime


class Refund(Output):
    customer_id: str
    application_event_id: str
    status: Literal["scheduled", "rejected"]
    refund_krw: int
    payout_date: date | None = None
    reason: RefundRejection | None = None


class Notification(Output):
    notification_id: str
    customer_id: str
    round: int
    channel: Channel
    to: str
    message_type: Literal["SMS", "LMS"] | None = None
    subject: str | None = None
    body: str
    html: str | None = None
    template: str
    send_after: datetime
    created_at: datetime
    kind: Literal["guidance", "reward_notice", "reward_choice"] = "guidance"


class DeadLetter(Output):
    source_topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    error: str
    received_at: datetime


class RewardGrant(Output):
    customer_id: str
    reward: str  # data_100gb | roaming_bonus | ott_voucher | membership_discount
    months: int
    valid_from: str  # YYYY-MM
    valid_until: str


class ChoiceResult(Output):
    customer_id: str
    choice_event_id: str
    status: Literal["accepted", "refused"]
    service: str
    reason: Literal["not_eligible", "unknown_service", "already_chosen"] | None = None
