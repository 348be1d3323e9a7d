"""Pydantic models: the public contract's messages and the per-customer state."""

from schemas.events import (
    Application,
    Cancellation,
    Contact,
    ContractChange,
    Deadline,
    DeliveryReceipt,
)
from schemas.outputs import DeadLetter, Decision, Notification, Refund
from schemas.state import CustomerState, Delivery, SentRound

__all__ = [
    "Application",
    "Cancellation",
    "Contact",
    "ContractChange",
    "CustomerState",
    "DeadLetter",
    "Deadline",
    "Decision",
    "Delivery",
    "DeliveryReceipt",
    "Notification",
    "Refund",
    "SentRound",
]
