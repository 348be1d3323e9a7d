"""Input events published by upstream systems (contract section 2, inputs).

Models are strict: a wrong JSON type is an error, not a coercion, so that a
malformed event is dead-lettered with the field named instead of guessed at.
Unknown extra fields are ignored, as the contract promises.
"""

from datetime import date
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

CustomerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LineType = Literal["postpaid", "prepaid", "mvno", "iot"]
Channel = Literal["sms", "email"]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{6,22}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)]


class Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Contact(Event):
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    phone: Phone | None = None
    email: Email | None = None
    preferred_channel: Channel | None = None

    @field_validator("name", "phone", "email", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class ContractChange(Event):
    kind: Literal["new_signup", "device_change", "recontract"]
    on: date


class Cancellation(Event):
    event_id: EventId
    customer_id: CustomerId
    cancelled_at: AwareDatetime
    line_type: LineType
    termination: Literal["voluntary", "involuntary"]
    last_contract_change: ContractChange | None = None
    penalty_krw: Annotated[int, Field(ge=0, le=100_000_000)]
    contact: Contact | None = None


class Application(Event):
    event_id: EventId
    customer_id: CustomerId
    applied_at: AwareDatetime
    channel: Literal["web", "call_center", "store"]


class Deadline(Event):
    event_id: EventId
    kind: Literal["guidance_round", "reward_notice"]
    round: Annotated[int, Field(ge=1, le=99)] | None = None
    at: AwareDatetime

    @model_validator(mode="after")
    def _round_for_guidance(self) -> "Deadline":
        if self.kind == "guidance_round" and self.round is None:
            raise ValueError("round: required for a guidance_round deadline")
        return self


class Subscriber(Event):
    """A line status snapshot or change (topic waiver.subscribers, key customer_id)."""

    event_id: EventId
    customer_id: CustomerId
    line_type: LineType
    status: Literal["active", "suspended", "cancelled"]
    as_of: AwareDatetime
    contact: Contact | None = None


class RewardChoice(Event):
    """The customer's choice of OTT service (topic waiver.reward-choices)."""

    event_id: EventId
    customer_id: CustomerId
    service: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    chosen_at: AwareDatetime | None = None


class DeliveryReceipt(Event):
    """A gateway's report on one task (topic waiver.delivery-receipts, key customer_id)."""

    event_id: EventId
    customer_id: CustomerId
    notification_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    status: Literal["delivered", "failed", "rejected"]
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _failure_has_reason(self) -> "DeliveryReceipt":
        if self.status != "delivered" and not self.reason:
            raise ValueError(f"reason: required when status is {self.status}")
        return self
