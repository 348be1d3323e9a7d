"""A guidance round's customer, from stored state to encoded records, without pydantic.

A round touches a million states: validating each into a `CustomerState`, building a
`Notification`, `SentRound` and `Delivery` and encoding two models cost about 100 µs a
customer, most of a round's CPU. Here a round decodes only the fields it reads
(`schemas.round_view`), asks the same rule (`rules.reminders.round_due`), fills the
same task fields (`rules.messages.guidance_fields`), and writes the task and the new
state with msgspec. The bytes parse to exactly what the pydantic path produces
(tests/unit/test_guidance_round.py proves it on generated customers); a customer the
round changes in another way (unreachable) goes through the pydantic path.
"""

from datetime import datetime
from functools import lru_cache

import msgspec
import pydantic_core

from rules.customer import on_round
from rules.messages import guidance_fields
from rules.program import Program
from rules.reminders import choose_recipient, round_due
from schemas.round_view import decode_round_view
from schemas.state import CustomerState
from streams.encoded import Counts, Encoded, encode_effects

_encoder = msgspec.json.Encoder()
_decode_state = msgspec.json.Decoder(dict).decode


@lru_cache(maxsize=64)  # every customer of a round has the same two
def _pydantic_time(moment: datetime) -> str:
    """A datetime as pydantic writes it (`Z` for UTC), so that the task's bytes match."""
    return pydantic_core.to_json(moment).decode()[1:-1]


def guidance_for(stored: bytes, round_no: int, round_at: datetime, program: Program,
                 now: datetime, counts: Counts) -> Encoded | None:
    """Round `round_no` for one stored state: its task and new state, or None."""
    view = decode_round_view(stored)
    due = round_due(view, round_no)
    if due == "not_due":
        return None
    if due == "unreachable":
        state = CustomerState.model_validate_json(stored)
        return encode_effects(on_round(state, round_no, round_at, program, now), counts)
    assert view.cancellation is not None
    recipient = choose_recipient(view.cancellation.contact)
    assert recipient is not None
    task = guidance_fields(view, round_no, round_at, recipient, program, now)
    send_after = _pydantic_time(task["send_after"])  # type: ignore[arg-type]
    task["send_after"] = send_after
    task["created_at"] = _pydantic_time(now)
    channel = recipient.channel
    notification_id = task["notification_id"]
    state = _decode_state(stored)
    # What on_round adds, as encode_state writes it: a SentRound, and a Delivery with
    # its defaults (pending, no fallback) left out.
    state["rounds_sent"] = {**state.get("rounds_sent", {}), str(round_no): {
        "notification_id": notification_id, "channel": channel, "send_after": send_after}}
    state["deliveries"] = {**state.get("deliveries", {}),
                           notification_id: {"round": round_no, "channel": channel}}
    counts["notifications", (str(round_no), channel)] += 1
    return (view.customer_id, [("sms" if channel == "sms" else "email", _encoder.encode(task))],
            _encoder.encode(state))
