"""Render a guidance round's SMS or e-mail task from the Jinja templates."""

import hashlib
import re
import unicodedata
import uuid
from datetime import date, datetime
from functools import lru_cache
from importlib import resources

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from rules.program import Program
from rules.reminders import Recipient, send_after
from schemas.outputs import Notification
from schemas.round_view import RoundView
from schemas.state import CustomerState

SMS_MAX_BYTES = 90  # EUC-KR bytes; longer bodies go as LMS
NOTIFICATION_NAMESPACE = uuid.UUID("5f0b8f9e-2b1c-4c55-9a51-6f1f3f0e6c11")
_NAMESPACE_BYTES = NOTIFICATION_NAMESPACE.bytes
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
    return task_id(f"{customer_id}/guidance/{round_no}{suffix}")


def task_id(name: str) -> str:
    """`str(uuid.uuid5(NOTIFICATION_NAMESPACE, name))` without building UUID objects,
    which cost more than the hash in a million-customer round."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


class _Amount:
    """Stands in for an amount while a stencil renders: formats as a marker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __format__(self, spec: str) -> str:
        if spec != ",":  # the stencil fills in f"{amount:,}" (what `won` prints)
            raise ValueError(f"unsupported format for a stencilled amount: {spec!r}")
        return self.marker


_MARKERS = ("\x00name\x00", "\x00refund\x00")
_CHECK_MARKERS = ("\x01n\x01", "\x01r\x01")


@lru_cache(maxsize=256)
def _stencil(template: str, part: str, constants: tuple[tuple[str, object], ...]
             ) -> tuple[str, ...] | None:
    """A round's template rendered once, split where the customer's name and refund go.

    A guidance round renders the same text for every customer except for those two
    values, and Jinja costs most of a customer's CPU, so a round renders each
    (template, part) once. A template that does more with them than print them (a
    test, a filter other than `won`) fails the check below and is rendered per
    customer instead."""
    def with_markers(markers: tuple[str, str]) -> str | None:
        context = {**dict(constants), "name": markers[0], "refund_krw": _Amount(markers[1])}
        try:
            return render(template, part, context)
        except Exception:  # e.g. a comparison with the amount: not stencil-safe
            return None

    text = with_markers(_MARKERS)
    check = with_markers(_CHECK_MARKERS)
    if text is None or check is None:
        return None
    pieces = tuple(re.split("(\x00name\x00|\x00refund\x00)", text))
    if _fill(pieces, *_CHECK_MARKERS, html=False) != check:
        return None
    return pieces


def _fill(pieces: tuple[str, ...], name: str, amount: str, html: bool) -> str:
    if html:
        name, amount = str(escape(name)), str(escape(amount))
    values = {_MARKERS[0]: name, _MARKERS[1]: amount}
    return "".join(values.get(piece, piece) for piece in pieces)


def render_for(template: str, part: str, constants: tuple[tuple[str, object], ...],
               name: str, refund_krw: int) -> str:
    """`render(template, part, {**constants, name, refund_krw})`, from the stencil."""
    pieces = _stencil(template, part, constants)
    if pieces is None:
        return render(template, part, {**dict(constants), "name": name, "refund_krw": refund_krw})
    return _fill(pieces, name, f"{refund_krw:,}", html=part == "html")


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
    return Notification(**guidance_fields(state, round_no, round_at, recipient, program, now,
                                          fallback))


def guidance_fields(
    state: CustomerState | RoundView,
    round_no: int,
    round_at: datetime,
    recipient: Recipient,
    program: Program,
    now: datetime,
    fallback: bool = False,
) -> dict[str, object]:
    """`guidance`'s task as the values of every Notification field, in the model's
    order: what a round's fast path encodes without building the model."""
    assert state.decision is not None
    contact = state.cancellation.contact if state.cancellation else None
    template = program.rounds[round_no].template
    constants = _round_constants(program, round_no)
    name = clean_text(contact.name if contact else None, fallback="고객")
    refund = state.decision.refund_krw
    sms = recipient.channel == "sms"
    body = render_for(template, "sms" if sms else "txt", constants, name, refund)
    return {
        "notification_id": notification_id(state.customer_id, round_no, fallback),
        "customer_id": state.customer_id,
        "round": round_no,
        "channel": recipient.channel,
        "to": recipient.to,
        "message_type": sms_type(body) if sms else None,
        "subject": None if sms else render_for(template, "subject", constants, name, refund),
        "body": body,
        "html": None if sms else render_for(template, "html", constants, name, refund),
        "template": template,
        "send_after": send_after(round_at, program),
        "created_at": now,
        "kind": "guidance",
    }


def _round_constants(program: Program, round_no: int) -> tuple[tuple[str, object], ...]:
    """The template context every customer of a round shares (hashable: a cache key)."""
    return (
        ("deadline", korean_date(program.applications.closes)),
        ("channels", tuple(program.applications.channels)),
        ("carrier", program.carrier_name),
        ("round", round_no),
        ("last_notice", program.rounds[round_no].last_notice),
    )
