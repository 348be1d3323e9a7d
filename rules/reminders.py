"""Who gets guidance round N, on which channel, and when it may be sent.

This is the one place that answers "who gets round 2".
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal

from rules.program import Program
from schemas.events import Channel, Contact
from schemas.round_view import ContactView, RoundView
from schemas.state import CustomerState

Due = Literal["send", "unreachable", "not_due"]


@dataclass(frozen=True)
class Recipient:
    channel: Channel
    to: str


def round_due(state: CustomerState | RoundView, round_no: int) -> Due:
    """Whether a customer is due round `round_no` at the moment it is processed.

    Due: an eligible decision with a refund above zero, no scheduled refund,
    and no notification for this round ever sent before. A due customer with
    neither phone nor e-mail is `unreachable`.
    """
    decision = state.decision
    if decision is None or not decision.eligible or decision.refund_krw <= 0:
        return "not_due"
    if state.refund is not None and state.refund.status == "scheduled":
        return "not_due"
    if round_no in state.rounds_sent:
        return "not_due"
    if choose_recipient(state.cancellation.contact if state.cancellation else None) is None:
        return "unreachable"
    return "send"


def choose_recipient(contact: Contact | ContactView | None) -> Recipient | None:
    """The preferred channel if that contact exists, else SMS, else e-mail."""
    if contact is None:
        return None
    addresses: dict[Channel, str | None] = {"sms": contact.phone, "email": contact.email}
    preferred = contact.preferred_channel
    if preferred is not None and addresses[preferred]:
        return Recipient(preferred, addresses[preferred])  # type: ignore[arg-type]
    for channel in ("sms", "email"):
        if addresses[channel]:
            return Recipient(channel, addresses[channel])  # type: ignore[arg-type]
    return None


def send_after(moment: datetime, program: Program) -> datetime:
    """The first instant at or after `moment` inside the program's daily send window."""
    return _send_after(moment, program.tz, program.send_window.start, program.send_window.end)


@lru_cache(maxsize=64)  # every customer of a round asks with the same moment
def _send_after(moment: datetime, tz: tzinfo, window_start: time, window_end: time) -> datetime:
    local = moment.astimezone(tz)
    start = local.replace(hour=window_start.hour, minute=window_start.minute, second=0,
                          microsecond=0)
    end = local.replace(hour=window_end.hour, minute=window_end.minute, second=0, microsecond=0)
    if local < start:
        return start
    if local >= end:
        return start + timedelta(days=1)
    return local
