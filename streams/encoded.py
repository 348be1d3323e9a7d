"""What a rule's Effects write, as bytes: the output records, the customer's new state
and the metric counts. Encoding is, with the rule itself, most of a round's CPU, and
bytes cross to a pool process and back cheaply (streams/rounds.py)."""

from collections import Counter

from pydantic import BaseModel

from rules.customer import Effects
from schemas.state import CustomerState

# (name of a Metrics counter, its label values) -> increment
Counts = Counter[tuple[str, tuple[str, ...]]]


# (customer_id, its records as (output: a TopicNames attribute, JSON value), its new
# state or None when unchanged). A plain tuple: a round's pool results unpickle a
# million of them, and a NamedTuple's constructor cost 4 % of the event loop's time.
Encoded = tuple[str, list[tuple[str, bytes]], bytes | None]


def encode(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def encode_state(state: CustomerState) -> bytes:
    """A state as stored in the table: without the fields at their defaults, which
    parsing restores. A quarter fewer bytes in memory and on the changelog."""
    return state.__pydantic_serializer__.to_json(state, exclude_defaults=True)


def encode_effects(effects: Effects, counts: Counts) -> Encoded:
    """The records in the order they are sent; the metric increments go to `counts`."""
    records: list[tuple[str, bytes]] = []
    for decision in effects.decisions:
        counts["decisions", (decision.reason,)] += 1
        records.append(("decisions", encode(decision)))
    for refund in effects.refunds:
        counts["refunds", (refund.status, str(refund.payout_date or refund.reason))] += 1
        records.append(("refunds", encode(refund)))
    for task in effects.notifications:
        labels = (str(task.round), task.channel)
        counts["notifications", labels] += 1
        delivery = effects.state.deliveries.get(task.notification_id)
        if delivery is not None and delivery.fallback_for:
            counts["fallbacks", labels] += 1
        records.append(("sms" if task.channel == "sms" else "email", encode(task)))
    for round_no in effects.unreachable_rounds:
        counts["unreachable", (str(round_no),)] += 1
    for grant in effects.grants:
        counts["rewards", (grant.reward,)] += 1
        records.append(("rewards", encode(grant)))
    for result in effects.choices:
        records.append(("reward_choice_results", encode(result)))
    for round_no in effects.final_failures:
        counts["delivery_failures", (str(round_no),)] += 1
    state = encode_state(effects.state) if effects.changed else None
    return effects.state.customer_id, records, state


def total(counts: Counts, metric: str) -> int:
    return sum(n for (name, _), n in counts.items() if name == metric)
