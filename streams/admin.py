"""Create the pipeline's topics before the worker subscribes, and refuse to run on
topics whose partition counts would break co-partitioning."""

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.settings import Settings
from streams.topics import TopicNames

log = logging.getLogger("waiver")


class TopicMismatch(RuntimeError):
    pass


def pipeline_topics(names: TopicNames) -> list[str]:
    return [*names.customer_inputs(), names.deadlines, *names.outputs()]


def copartitioned(names: TopicNames) -> list[str]:
    """Topics that must have exactly the customer partition count."""
    return names.customer_inputs()


async def partition_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(topics)
    return {t["topic"]: len(t["partitions"]) for t in described if t.get("partitions")}


async def ensure_topics(settings: Settings, attempts: int = 30) -> dict[str, int]:
    """Create missing topics with `settings.partitions`; verify the co-partitioned ones."""
    names = TopicNames(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=30000,
                                **settings.client_options())
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except KafkaError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1)
    try:
        wanted = pipeline_topics(names)
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            new = [NewTopic(t, settings.partitions, settings.replication_factor) for t in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                await admin.create_topics(new)
            log.info("created topics: %s", ", ".join(missing))
        counts: dict[str, int] = {}
        for _ in range(50):  # creation is asynchronous on some brokers
            counts = await partition_counts(admin, wanted)
            if all(t in counts for t in wanted):
                break
            await asyncio.sleep(0.2)
        wrong = {t: counts.get(t) for t in copartitioned(names)
                 if counts.get(t) != settings.partitions}
        if wrong:
            detail = ", ".join(f"{t} has {n}" for t, n in wrong.items())
            raise TopicMismatch(
                f"co-partitioned topics must have {settings.partitions} partitions "
                f"(WAIVER_PARTITIONS): {detail}. Set WAIVER_PARTITIONS to match, or "
                "repartition the topics.")
        return counts
    finally:
        await admin.close()


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.application_id}-{table}-changelog" for table in ("customers",
                                                                         "rounds-done")]
