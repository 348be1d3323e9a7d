"""The customer agent: cancellations, applications and round triggers for the
customers of one partition, applied in order to the customer table."""

import asyncio
import json
from collections import Counter
from contextlib import aclosing
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from pydantic import BaseModel

from rules.customer import on_application, on_cancellation
from rules.delivery import UnknownNotification, on_receipt
from rules.program import round_label
from rules.rewards import on_choice, on_subscriber
from schemas.events import Application, Cancellation, DeliveryReceipt, RewardChoice, Subscriber
from schemas.state import CustomerState
from streams.agents.dead_letters import to_dead_letter
from streams.app import log, utcnow
from streams.batches import by_key, take_batches
from streams.codec import BadMessage, parse
from streams.encoded import Counts, Encoded, encode_effects, total
from streams.round_barrier import RoundBarrier
from streams.rounds import Round
from streams.writer import (
    EventWriter,
    RecordTooLarge,
    TransactionUnavailable,
    batch_key,
    stop_now,
    store_of,
)

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
        """Its key in the rounds-done table."""
        return round_label(self.kind, self.round)


HELD_POLL_SECONDS = 0.1


def load(stored: bytes | None) -> CustomerState | None:
    return None if stored is None else CustomerState.model_validate_json(stored)


def attach(p: "Pipeline") -> None:
    names = p.names
    table = p.customers
    metrics = p.metrics
    max_batch = p.settings.max_batch
    barrier = RoundBarrier(p.app, [t for t in names.customer_inputs()
                                   if t != names.round_triggers])

    outputs = {attr: getattr(names, attr) for attr in (
        "decisions", "refunds", "sms", "email", "rewards", "reward_choice_results")}

    async def write(w: EventWriter, encoded: Encoded) -> None:
        """A customer's output records (keyed by the customer, of the batch's partition)
        and new state."""
        customer_id, records, state = encoded
        key = customer_id.encode()
        # All or nothing: a record too large for Kafka (put checks the state) fails the
        # event before any write.
        for _, value in records:
            w.check_size(key, value)
        if state is not None:
            w.put(table, customer_id, state)
        for output, value in records:
            await w.send(outputs[output], key, value, keyed_here=True)

    def count(counts: Counts) -> None:
        for (metric, labels), n in counts.items():
            getattr(metrics, metric).labels(*labels).inc(n)

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
            # Wrong or missing key: move the event to its customer's partition. One too
            # large to forward goes as parsed (the fields it has beyond the schema are
            # ignored anyway), and to the dead letters if even that is too large.
            key, headers = customer_id.encode(), [(SOURCE_HEADER, source.encode())]
            value = msg.value
            try:
                w.check_size(key, value, headers)
            except RecordTooLarge:
                value = parsed.model_dump_json().encode()
            try:
                await w.send(names.rerouted, key, value, partition=home, headers=headers)
            except RecordTooLarge as exc:
                await to_dead_letter(p, event, source, f"cannot move the event to its "
                                     f"customer's partition {home}: {exc}", writer=w)
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
        counts: Counts = Counter()
        try:
            await write(w, encode_effects(effects, counts))
        except RecordTooLarge as exc:
            await to_dead_letter(p, event, source, str(exc), writer=w)
            return
        count(counts)

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
        states = round_states(w, partition)
        job = Round(trigger.kind, trigger.round, trigger.at, now=utcnow())
        sent = unreachable = 0
        async with aclosing(p.rounds.chunks(states, job)) as chunks:
            async for encoded, counts in chunks:
                for customer in encoded:
                    await write(w, customer)
                count(counts)
                sent += total(counts, "notifications")
                unreachable += total(counts, "unreachable")
        log.info("round %s partition %d: %d tasks, %d unreachable, %d customers",
                 trigger.label, partition, sent, unreachable, len(states))
        done[trigger.label] = {"event_id": trigger.event_id,
                               "at": trigger.at.isoformat(), "sent": sent,
                               "unreachable": unreachable,
                               "completed_at": job.now.isoformat()}
        w.put(p.rounds_done, str(partition), done)
        await progress(w, trigger, partition, customers=len(states), sent=sent,
                       unreachable=unreachable, repeat=False)

    def customers_per_partition() -> int:
        """About how many customers a partition's round walks: the average over the
        customer partitions this worker holds (customers hash evenly)."""
        store = store_of(table)
        held = [store.size_in(partition) for partition in range(p.settings.partitions)]
        held = [n for n in held if n]
        return sum(held) // max(1, len(held))

    def round_states(w: EventWriter, partition: int) -> list[bytes]:
        """The states of `partition`'s customers, as this batch has changed them."""
        return [value for _, value in w.items(table) if value is not None]

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
                    barrier.processed_event(event)
                    await on_customer_event(w, event, source)
        except KafkaError:
            raise  # the broker is in trouble: see process()
        except Exception as exc:  # a bug must not stop the stream: park the event
            log.exception("failed to process %s[%d]@%d", source, msg.partition, msg.offset)
            w.discard()
            await to_dead_letter(p, event, source, f"internal error: {type(exc).__name__}",
                                 writer=w)
        w.done(event)

    def is_trigger(event: "EventT") -> bool:
        return event.message.topic == names.round_triggers

    turn = asyncio.Lock()  # a batch, or the release of held triggers: one at a time

    async def process(events: "list[EventT]") -> None:
        # A round trigger runs once the customer events before it are in (round_barrier).
        async with turn:
            triggers = [event for event in events if is_trigger(event)]
            if triggers:  # spawns while the barrier and the table scan run
                p.rounds.warm_up(customers_per_partition())
            run_now = {id(event) for event in await barrier.admit(triggers)}
            admitted = [event for event in events
                        if not is_trigger(event) or id(event) in run_now]
            await write_batch(admitted)
            await release_held()

    async def release_held() -> None:
        while ready := barrier.released():
            await write_batch(ready)

    async def poll_held() -> None:
        """Held triggers also catch up with no event coming: the consumer's position
        passes the transaction markers at the end of their partitions."""
        while True:
            await asyncio.sleep(HELD_POLL_SECONDS)
            if barrier.held:
                try:
                    async with turn:
                        await release_held()
                except Exception:
                    log.exception("releasing held round triggers failed")

    async def write_batch(events: "list[EventT]") -> None:
        # One writer per source partition. Those of customer events run all at once:
        # their partitions, customers and transactions are disjoint, and each mostly
        # waits on the broker (its acks, or its transaction's lock during a commit); one
        # after the other, a batch spread over 8 partitions waited 8 times as long.
        # Rounds run one at a time: they keep the CPU busy anyway, and each holds its
        # partition's states while it runs.
        at_once: list[list[EventT]] = []
        in_turn: list[list[EventT]] = []
        for part in by_key(events, lambda event: batch_key(p.app, event)):
            (in_turn if any(map(is_trigger, part)) else at_once).append(part)

        async def one_by_one() -> None:
            for part in in_turn:
                await write_part(part)
                # At-least-once: its acks and state are in before the next round
                # starts, so that at most one round's tasks and states wait in memory.
                await p.pending_writes.wait(part[0].message.partition)

        await asyncio.gather(one_by_one(), *(write_part(part) for part in at_once))

    async def write_part(part: "list[EventT]") -> None:
        try:
            async with EventWriter(p, part) as w:
                for event in part:
                    await handle(w, event)
        except TransactionUnavailable as exc:
            # Revoked while queued: Faust discards commits for revoked partitions,
            # and the new owner reads these events again.
            log.warning("skipped %d events of a revoked partition: %s", len(part), exc)
        except KafkaError as exc:
            # The broker refused a write after the client's own retries. Faust
            # would ack the batch on the way out; stop before anything more is
            # committed, and the restarted worker resumes from the last commit.
            stop_now(exc)

    @p.app.agent(p.customer_inputs, name="customers")
    async def customers(stream: Any) -> None:
        poller = asyncio.create_task(poll_held())
        try:
            async for events in take_batches(stream, max_batch,
                                             p.settings.batch_wait_ms / 1000):
                await process(events)
        finally:
            poller.cancel()
            await p.pending_writes.drain()
            p.rounds.close()

