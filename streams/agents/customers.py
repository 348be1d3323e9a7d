"""The customer agent: cancellations, applications and round triggers for the
customers of one partition, applied in order to the customer table."""

import json
import re
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from pydantic import BaseModel

from rules.customer import Effects, on_application, on_cancellation, on_round
from rules.delivery import UnknownNotification, on_receipt
from rules.rewards import on_choice, on_reward_notice, on_subscriber
from schemas.events import Application, Cancellation, DeliveryReceipt, RewardChoice, Subscriber
from schemas.state import CustomerState
from streams.agents.dead_letters import to_dead_letter
from streams.app import log, utcnow
from streams.codec import BadMessage, parse
from streams.writer import EventWriter, batch_key

if TYPE_CHECKING:
    from faust.types import EventT

    from streams.app import Pipeline

SOURCE_HEADER = "waiver-source-topic"


class RoundTrigger(BaseModel):
    """Internal: a guidance round (or the reward notice) is to be processed here."""

    event_id: str
    kind: str = "guidance_round"
    round: int | None = None
    at: datetime

    @property
    def label(self) -> str:
        """Its key in the rounds-done table: "1", "2", "3" or "reward_notice"."""
        return str(self.round) if self.kind == "guidance_round" else self.kind


def encode(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


# A stored state begins with its customer_id and partition (the model's field order;
# Faust's older JSON encoding put spaces after the separators).
_PARTITION = re.compile(
    rb'^\{\s*"customer_id"\s*:\s*"(?:[^"\\]|\\.)*"\s*,\s*"partition"\s*:\s*(\d+)')


def stored_partition(stored: bytes) -> int:
    """The partition recorded in a stored state, without parsing all of it."""
    match = _PARTITION.match(stored)
    if match is not None:
        return int(match.group(1))
    return int(json.loads(stored).get("partition", 0))


def load(stored: bytes | None) -> CustomerState | None:
    return None if stored is None else CustomerState.model_validate_json(stored)


def batches(events: "Sequence[EventT]", key: "Callable[[EventT], Hashable]"
            ) -> "list[list[EventT]]":
    """`events` split by `key`, each part in the order it arrived."""
    parts: dict[Hashable, list[EventT]] = {}
    for event in events:
        parts.setdefault(key(event), []).append(event)
    return list(parts.values())


def attach(p: "Pipeline") -> None:
    names = p.names
    table = p.customers
    metrics = p.metrics
    max_batch = p.settings.max_batch

    async def write(w: EventWriter, effects: Effects) -> None:
        for decision in effects.decisions:
            metrics.decisions.labels(decision.reason).inc()
            await w.send(names.decisions, decision.customer_id.encode(), encode(decision))
        for refund in effects.refunds:
            metrics.refunds.labels(refund.status, str(refund.payout_date or refund.reason)).inc()
            await w.send(names.refunds, refund.customer_id.encode(), encode(refund))
        for task in effects.notifications:
            metrics.notifications.labels(str(task.round), task.channel).inc()
            delivery = effects.state.deliveries.get(task.notification_id)
            if delivery is not None and delivery.fallback_for:
                metrics.fallbacks.labels(str(task.round), task.channel).inc()
            topic = names.sms if task.channel == "sms" else names.email
            await w.send(topic, task.customer_id.encode(), encode(task))
        for round_no in effects.unreachable_rounds:
            metrics.unreachable.labels(str(round_no)).inc()
        for grant in effects.grants:
            metrics.rewards.labels(grant.reward).inc()
            await w.send(names.rewards, grant.customer_id.encode(), encode(grant))
        for result in effects.choices:
            await w.send(names.reward_choice_results, result.customer_id.encode(),
                         encode(result))
        for round_no in effects.final_failures:
            metrics.delivery_failures.labels(str(round_no)).inc()
        if effects.changed:
            w.put(table, effects.state.customer_id, encode(effects.state))

    async def on_customer_event(w: EventWriter, event: "EventT", source: str) -> None:
        msg = event.message
        model = {names.cancellations: Cancellation, names.delivery_receipts: DeliveryReceipt,
                 names.subscribers: Subscriber, names.reward_choices: RewardChoice,
                 }.get(source, Application)
        try:
            parsed = parse(model, msg.value)
        except BadMessage as exc:
            await to_dead_letter(p, event, source, str(exc), writer=w)
            return
        customer_id = parsed.customer_id
        home = p.partition_for(customer_id)
        if msg.partition != home:
            # Wrong or missing key: move the event to its customer's partition.
            await w.send(names.rerouted, customer_id.encode(), msg.value, partition=home,
                         headers=[(SOURCE_HEADER, source.encode())])
            return
        state = load(w.get(table, customer_id))
        if isinstance(parsed, Cancellation):
            effects = on_cancellation(state, parsed, msg.partition, p.program, utcnow())
        elif isinstance(parsed, DeliveryReceipt):
            try:
                effects = on_receipt(state, parsed, p.program, utcnow())
            except UnknownNotification as exc:
                await to_dead_letter(p, event, source, str(exc), writer=w)
                return
            if effects.changed:
                channel = effects.state.deliveries[parsed.notification_id].channel
                metrics.deliveries.labels(channel, parsed.status).inc()
        elif isinstance(parsed, Subscriber):
            effects = on_subscriber(state, parsed, msg.partition, p.program)
        elif isinstance(parsed, RewardChoice):
            effects = on_choice(state, parsed, msg.partition, p.program, utcnow())
        else:
            effects = on_application(state, parsed, msg.partition, p.program)
        await write(w, effects)

    async def on_round_trigger(w: EventWriter, event: "EventT") -> None:
        msg = event.message
        trigger = RoundTrigger.model_validate_json(msg.value)
        partition = msg.partition
        done = dict(w.get(p.rounds_done, str(partition)) or {})
        if trigger.label in done:
            log.info("round %s partition %d: already processed (%s), nothing to do",
                     trigger.label, partition, done[trigger.label]["event_id"])
            await progress(w, trigger, partition, customers=0, sent=0, unreachable=0,
                           repeat=True)
            return
        states = [value for _, value in w.items(table)
                  if value is not None and stored_partition(value) == partition]
        now = utcnow()
        sent = unreachable = 0
        for stored in states:
            state = load(stored)
            assert state is not None
            if trigger.kind == "reward_notice":
                effects = on_reward_notice(state, trigger.at, p.program, now)
            else:
                assert trigger.round is not None
                effects = on_round(state, trigger.round, trigger.at, p.program, now)
            sent += len(effects.notifications)
            unreachable += len(effects.unreachable_rounds)
            await write(w, effects)
        log.info("round %s partition %d: %d tasks, %d unreachable, %d customers",
                 trigger.label, partition, sent, unreachable, len(states))
        done[trigger.label] = {"event_id": trigger.event_id,
                               "at": trigger.at.isoformat(), "sent": sent,
                               "unreachable": unreachable,
                               "completed_at": now.isoformat()}
        w.put(p.rounds_done, str(partition), done)
        await progress(w, trigger, partition, customers=len(states), sent=sent,
                       unreachable=unreachable, repeat=False)

    async def progress(w: EventWriter, trigger: RoundTrigger, partition: int, *,
                       customers: int, sent: int, unreachable: int, repeat: bool) -> None:
        record = {"event_id": trigger.event_id, "kind": trigger.kind, "round": trigger.round,
                  "partition": partition,
                  "partitions": p.settings.partitions, "customers": customers, "sent": sent,
                  "unreachable": unreachable, "repeat": repeat,
                  "completed_at": utcnow().isoformat()}
        await w.send(names.round_progress, None, json.dumps(record).encode(),
                     partition=partition)

    async def handle(w: EventWriter, event: "EventT") -> None:
        msg = event.message
        source = msg.topic
        if source == names.rerouted:
            source = dict(event.headers or {}).get(SOURCE_HEADER, b"").decode()
        metrics.events_in.labels(source).inc()
        kind = {names.round_triggers: "round", names.cancellations: "cancellation"}.get(
            source, "application")
        try:
            with metrics.processing.labels(kind).time():
                if source == names.round_triggers:
                    await on_round_trigger(w, event)
                else:
                    await on_customer_event(w, event, source)
        except KafkaError:
            raise  # the broker is in trouble: nothing of the batch is acked, never dropped
        except Exception as exc:  # a bug must not stop the stream: park the event
            log.exception("failed to process %s[%d]@%d", source, msg.partition, msg.offset)
            w.discard()
            await to_dead_letter(p, event, source, f"internal error: {type(exc).__name__}",
                                 writer=w)
        w.done(event)

    async def process(events: "list[EventT]") -> None:
        for part in batches(events, lambda event: batch_key(p.app, event)):
            async with EventWriter(p, part) as w:
                for event in part:
                    await handle(w, event)

    @p.app.agent(p.customer_inputs, name="customers")
    async def customers(stream: Any) -> None:
        # Without Faust's acks: the writer acks each event once its writes are done.
        events = stream.noack()
        queue = events.channel.queue
        pending: list[EventT] = []
        async for event in events.events():
            pending.append(event)
            # Batch what the consumer has already fetched; never wait for more.
            if len(pending) < max_batch and not queue.empty():
                continue
            await process(pending)
            pending = []
