"""The table's stored state leaves out the fields at their defaults; parsing it gives
back the same state, and the round's scan still finds its partition."""

import json
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from rules.customer import on_application, on_cancellation, on_round
from rules.delivery import on_receipt
from rules.program import load_program
from rules.rewards import on_choice, on_reward_notice, on_subscriber
from schemas.events import (
    Application,
    Cancellation,
    DeliveryReceipt,
    RewardChoice,
    Subscriber,
)
from schemas.state import CustomerState, Delivery
from streams.codec import parse
from streams.encoded import encode, encode_state
from streams.population import generate

PROGRAM = load_program()
M = TypeVar("M", bound=BaseModel)
ROUND_AT = {1: "2026-01-16T10:00:00+09:00", 2: "2026-01-21T10:00:00+09:00",
            3: "2026-01-28T10:00:00+09:00"}


def read(model: type[M], event: dict[str, Any]) -> M:
    return parse(model, json.dumps(event).encode())  # as the worker reads it


def journeys(customers: int = 240) -> list[CustomerState]:
    """Every state the demo population goes through: early and late applications,
    duplicates, three rounds, failed deliveries and their fallbacks, the rewards."""
    pop = generate(customers)
    states: dict[str, CustomerState] = {}
    seen: list[CustomerState] = []

    def keep(state: CustomerState) -> None:
        states[state.customer_id] = state
        seen.append(state)

    for i, event in enumerate(pop.early_applications):
        keep(on_application(None, read(Application, event), i % 8, PROGRAM).state)
    for event in pop.cancellations + pop.duplicates:
        cancellation = read(Cancellation, event)
        cid = cancellation.customer_id
        keep(on_cancellation(states.get(cid), cancellation, int(cid[1:]) % 8, PROGRAM,
                             cancellation.cancelled_at).state)
    for phase in range(4):
        for event in pop.applications[phase]:
            application = read(Application, event)
            cid = application.customer_id
            keep(on_application(states.get(cid), application, int(cid[1:]) % 8,
                                PROGRAM).state)
        if phase < 3:
            at = datetime.fromisoformat(ROUND_AT[phase + 1])
            for state in list(states.values()):
                effects = on_round(state, phase + 1, at, PROGRAM, at)
                keep(effects.state)
                for n, task in enumerate(effects.notifications):
                    if int(state.customer_id[1:]) % 5 == 0:  # a failed delivery
                        receipt = DeliveryReceipt(
                            event_id=f"r-{task.notification_id}-{n}",
                            customer_id=state.customer_id,
                            notification_id=task.notification_id, status="failed",
                            reason="handset off")
                        keep(on_receipt(states[state.customer_id], receipt, PROGRAM,
                                        at).state)
    notice_at = datetime.fromisoformat("2026-01-20T10:00:00+09:00")
    for i, event in enumerate(pop.subscribers):
        subscriber = read(Subscriber, event)
        keep(on_subscriber(states.get(subscriber.customer_id), subscriber, i % 8,
                           PROGRAM).state)
    for state in [s for s in states.values() if s.customer_id.startswith("S")]:
        keep(on_reward_notice(state, notice_at, PROGRAM, notice_at).state)
    for event in pop.choices:
        choice = read(RewardChoice, event)
        keep(on_choice(states.get(choice.customer_id), choice, 0, PROGRAM, notice_at).state)
    return seen


def test_stored_states_parse_back_to_the_same_state() -> None:
    seen = journeys()
    # The journeys set every field of the state, and every field of a delivery.
    for name, field in CustomerState.model_fields.items():
        assert any(getattr(s, name) != field.get_default(call_default_factory=True)
                   for s in seen), name
    deliveries = [d for s in seen for d in s.deliveries.values()]
    for name, field in Delivery.model_fields.items():
        assert any(getattr(d, name) != field.get_default(call_default_factory=True)
                   for d in deliveries), name
    full = stored = 0
    for state in seen:
        compact = encode_state(state)
        assert CustomerState.model_validate_json(compact) == state
        full += len(encode(state))
        stored += len(compact)
    assert stored < 0.8 * full


def test_partition_zero_is_stored_too() -> None:
    state = CustomerState(customer_id="C1", partition=0)
    assert encode_state(state) == b'{"customer_id":"C1","partition":0}'
