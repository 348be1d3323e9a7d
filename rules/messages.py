"""Render a guidance round's SMS or e-mail task from the Jinja templates."""

import re
import unicodedata
import uuid
from datetime import date, datetime
from functools import lru_cache
from importlib import resources

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from rules.program import Program
from rules.reminders import Recipient, send_after
from schemas.outputs import Notification
from schemas.state import CustomerState

SMS_MAX_BYTES = 90  # EUC-KR bytes; longer bodies go as LMS
NOTIFICATION_NAMESPACE = uuid.UUID("5f0b8f9e-2b1c-4c55-9a51-6f1f3f0e6c11")
_SPACES = re.compile(r"\s+")


def won(amount: int) -> str:
    """`184000` -> `184,000원`."""
    return f"{amount:,}원"


def korean_date(day: date) -> str:
    """`2026-01-31` -> `1월 31일`."""
    return f"{day.month}월 {day.day}일"


def notification_id(customer_id: str, round_no: int, fallback: bool = False) -> str:
    """Derived from (customer_id, round) alone, so a retry can never mint a second id.
    A round's one fallback (the other channel, after a failed delivery) has its own."""
    suffix = "/fallback" if fallback else ""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{customer_id}/guidance/{round_no}{suffix}"))


def euc_kr_length(text: str) -> int:
    """Bytes of `text` in EUC-KR; a character EUC-KR lacks counts as 2 (as a gateway's
    substitute would)."""
    try:
        return len(text.encode("euc-kr"))
    except UnicodeEncodeError:
        return sum(len(ch.encode("euc-kr", errors="ignore")) or 2 for ch in text)


def sms_type(body: str) -> str:
    return "SMS" if euc_kr_length(body) <= SMS_MAX_BYTES else "LMS"


def clean_text(value: str | None, fallback: str, limit: int = 40) -> str:
    """Customer-supplied text as one plain line: control characters dropped,
    whitespace collapsed. Templates print it; nothing in it is ever evaluated."""
    if not value:
        return fallback
    spaced = _SPACES.sub(" ", value)
    kept = "".join(ch for ch in spaced if unicodedata.category(ch)[0] != "C").strip()[:limit]
    return kept or fallback


@lru_cache(maxsize=4)
def _environment(autoescape: bool) -> SandboxedEnvironment:
    loader = FileSystemLoader(str(resources.files("templates")))
    env = SandboxedEnvironment(
        loader=loader,
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
    )
    env.filters["won"] = won
    return env


def render(template: str, part: str, context: dict[str, object]) -> str:
    """Render `<template>.<part>.j2`; HTML parts are autoescaped."""
    env = _environment(part == "html")
    return env.get_template(f"{template}.{part}.j2").render(context).strip()


def guidance(
    state: CustomerState,
    round_no: int,
    round_at: datetime,
    recipient: Recipient,
    program: Program,
    now: datetime,
    fallback: bool = False,
) -> Notification:
    """The notification task for one customer who is due round `round_no`."""
    assert state.decision is not None
    contact = state.cancellation.contact if state.cancellation else None
    template = program.rounds[round_no].template
    context = {
        "name": clean_text(contact.name if contact else None, fallback="고객"),
        "refund_krw": state.decision.refund_krw,
        "deadline": korean_date(program.applications.closes),
        "channels": list(program.applications.channels),
        "carrier": program.carrier_name,
        "round": round_no,
        "last_notice": program.rounds[round_no].last_notice,
    }
    common = {
        "notification_id": notification_id(state.customer_id, round_no, fallback),
        "customer_id": state.customer_id,
        "round": round_no,
        "channel": recipient.channel,
        "to": recipient.to,
        "template": template,
        "send_after": send_after(round_at, program),
        "created_at": now,
    }
    if recipient.channel == "sms":
        body = render(template, "sms", context)
        return Notification(**common, body=body, message_type=sms_type(body))
    return Notification(
        **common,
        subject=render(template, "subject", context),
        body=render(template, "txt", context),
        html=render(template, "html", context),
    )
