"""The part of a stored customer state a guidance round reads, as msgspec structs.

A round reads a few fields of every state of its partition; decoding only those, with
no validation (the table holds what the pydantic model wrote), costs a tenth of
`CustomerState.model_validate_json`. The names are the model's, so the rules in
`rules/reminders.py` read a view and a `CustomerState` alike.
"""

import msgspec


class ContactView(msgspec.Struct):
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    preferred_channel: str | None = None


class CancellationView(msgspec.Struct):
    contact: ContactView | None = None


class DecisionView(msgspec.Struct):
    eligible: bool
    refund_krw: int


class RefundView(msgspec.Struct):
    status: str


class RoundView(msgspec.Struct):
    customer_id: str
    cancellation: CancellationView | None = None
    decision: DecisionView | None = None
    refund: RefundView | None = None
    rounds_sent: dict[int, msgspec.Raw] = {}
    unreachable_rounds: list[int] = []


decode_round_view = msgspec.json.Decoder(RoundView).decode
