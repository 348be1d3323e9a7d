"""`waiver status`: what an operator checks first. Per pipeline topic, its partitions,
its records (end offsets) and how far the worker group is behind on the topics it
reads (committed offsets against end offsets)."""

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from rules.program import Program, round_label
from streams.admin import partition_counts, pipeline_topics
from streams.reader import OutputReader
from streams.settings import Settings
from streams.topics import TopicNames


async def status_table(settings: Settings) -> str:
    names = TopicNames(settings.topic_prefix)
    topics = pipeline_topics(names)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap,
                                **settings.client_options())
    # A member of the worker group that never joins it: it only reads the group's
    # committed offsets (the admin client's request for them fails on tansu).
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap,
                                group_id=settings.application_id, enable_auto_commit=False,
                                isolation_level="read_committed", **settings.client_options())
    await admin.start()
    await consumer.start()
    try:
        counts = await partition_counts(admin, topics)
        tps = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
        ends = await consumer.end_offsets(tps) if tps else {}
        read = {*names.customer_inputs(), names.deadlines}  # what the worker group consumes
        committed = {tp: await consumer.committed(tp) for tp in tps if tp.topic in read}
    finally:
        await consumer.stop()
        await admin.close()
    rows = [("topic", "partitions", "records", "group lag")]
    for topic in topics:
        if topic not in counts:
            rows.append((topic, "missing", "", ""))
            continue
        mine = [tp for tp in tps if tp.topic == topic]
        end = sum(ends[tp] for tp in mine)
        lag = sum(max(ends[tp] - (committed.get(tp) or 0), 0)
                  for tp in mine) if topic in read else None
        rows.append((topic, str(counts[topic]), f"{end:,}", "" if lag is None else f"{lag:,}"))
    return (f"broker {settings.bootstrap}, worker group {settings.application_id}\n"
            + columns(rows, right_from=1))


def columns(rows: list[tuple[str, ...]], right_from: int | None = None) -> str:
    """Rows as aligned text columns, those from `right_from` on aligned right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.rjust(w) if right_from is not None and i >= right_from
                  else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows)


async def rounds_table(settings: Settings, program: Program) -> str:
    """Each round of the program: due when (or by hand), fired by which deadline events,
    done on how many partitions (from the round-progress topic)."""
    names = TopicNames(settings.topic_prefix)
    reader = await OutputReader(settings.bootstrap, [names.round_progress]).start()
    try:
        await reader.settle(quiet=1.0)
        progress = reader.values(names.round_progress)
    finally:
        await reader.stop()
    due = {label: at for label, _, _, at in program.schedule()}
    labels = [round_label("guidance_round", n) for n in sorted(program.rounds)]
    labels += [round_label("reward_notice", None)] if program.rewards is not None else []
    rows = [("round", "due", "fired by", "partitions done")]
    for label in labels:
        mine = [p for p in progress if round_label(p["kind"], p["round"]) == label]
        done = {p["partition"] for p in mine}
        fired = ", ".join(sorted({p["event_id"] for p in mine})) or "-"
        when = due[label].isoformat() if label in due else "by hand"
        name = "reward notice" if label == "reward_notice" else label
        rows.append((name, when, fired, f"{len(done)}/{settings.partitions}"))
    return columns(rows)
