"""Prometheus metrics of one worker (each worker exposes its own; sum them in PromQL)."""

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from streams.app import Pipeline


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("waiver_events_in", "Input events received", ["topic"],
                                 registry=r)
        self.decisions = Counter("waiver_decisions", "Decisions made", ["reason"], registry=r)
        self.refunds = Counter("waiver_refunds", "Refund records", ["status", "payout_date"],
                               registry=r)
        self.notifications = Counter("waiver_notifications", "SMS/e-mail tasks emitted",
                                     ["round", "channel"], registry=r)
        self.dead_letters = Counter("waiver_dead_letters", "Messages sent to the dead-letter "
                                    "topic", ["topic"], registry=r)
        self.unreachable = Counter("waiver_unreachable", "Customers due a round with neither "
                                   "phone nor e-mail", ["round"], registry=r)
        self.deliveries = Counter("waiver_deliveries", "Delivery receipts from the gateways",
                                  ["channel", "status"], registry=r)
        self.fallbacks = Counter("waiver_fallbacks", "Tasks re-sent on the other channel after "
                                 "a failed delivery", ["round", "channel"], registry=r)
        self.delivery_failures = Counter("waiver_delivery_failures", "Rounds whose delivery "
                                         "failed for good", ["round"], registry=r)
        self.rewards = Counter("waiver_rewards", "Reward grants", ["reward"], registry=r)
        self.processing = Histogram(
            "waiver_processing_seconds", "Time to process one input event", ["kind"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                     5, 10, 30), registry=r)

    def attach_live(self, pipeline: "Pipeline") -> None:
        self.registry.register(_LiveGauges(pipeline))

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Counter values by label set, for the ops page."""
        out: dict[str, list[dict[str, Any]]] = {}
        for counter in (self.events_in, self.decisions, self.refunds, self.notifications,
                        self.dead_letters, self.unreachable, self.deliveries, self.fallbacks,
                        self.delivery_failures, self.rewards):
            for family in counter.collect():
                out[family.name] = [{**s.labels, "value": s.value} for s in family.samples
                                    if s.name.endswith("_total")]
        return out

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _LiveGauges(Collector):
    """Read at scrape time: consumer lag and round progress of this worker."""

    def __init__(self, pipeline: "Pipeline") -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[GaugeMetricFamily]:
        app = self.pipeline.app
        lag = GaugeMetricFamily("waiver_consumer_lag", "Records not yet read, per partition",
                                labels=["topic", "partition"])
        monitor = app.monitor
        for tp, end in dict(monitor.tp_end_offsets).items():
            read = monitor.tp_read_offsets.get(tp)
            behind = end - (read + 1) if read is not None else end
            lag.add_metric([tp.topic, str(tp.partition)], max(0, behind))
        yield lag
        done = GaugeMetricFamily("waiver_round_partitions_done",
                                 "Partitions (owned by this worker) whose fan-out of a round "
                                 "finished", labels=["round"])
        owned = {str(n) for n in self.pipeline.owned_partitions()}
        counts: dict[str, int] = {}
        for partition, rounds in list(self.pipeline.rounds_done.items()):
            if partition in owned:
                for round_no in rounds or {}:
                    counts[round_no] = counts.get(round_no, 0) + 1
        for round_no, n in sorted(counts.items()):
            done.add_metric([round_no], n)
        yield done
