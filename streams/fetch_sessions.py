"""Incremental fetch sessions (Kafka's KIP-227) for aiokafka's consumer.

aiokafka sends every fetch in full: each request names every partition it fetches
and each response lists them all, encoded and decoded in pure Python on Faust's
consumer thread. The worker reads 9 topics of 8 partitions, most of them idle; at
1,000 events/s its consumer thread sent about 130 fetches a second of 65 partitions
each, and held the GIL, which the event loop waits for, 29 % of the time.

In a session (Fetch v7+, Kafka 1.1 and later) the broker keeps each partition's fetch
offset: a request names only the partitions whose offset changed or that join the
session, and those to forget; a response lists only partitions with records or
changed offsets. The broker goes on reading a partition from the offset it keeps
until told otherwise, so every partition the consumer does not fetch this time (it
still holds records of it, or it is paused) leaves the session, and joins it again
at its position when it is fetched again. A broker that creates no session (session
id 0: tansu, a full session cache) gets full fetches, as before.
"""

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition

Offsets = dict[TopicPartition, int]

# Session epochs wrap from the largest int32 to 1 (0 asks for a new session).
_MAX_EPOCH = 2**31 - 1


class FetchSession:
    """One consumer's session with one broker: what the broker holds for it."""

    def __init__(self) -> None:
        self.assignment: Any = None  # aiokafka's Assignment the session is for
        self.reset()

    def reset(self) -> None:
        """The next fetch is a full one and asks for a new session."""
        self.id = 0
        self.epoch = 0
        self.offsets: Offsets = {}

    def plan(self, wanted: Offsets) -> tuple[Offsets, list[TopicPartition]]:
        """The partitions to name (with their offsets) and to forget, for a fetch of
        `wanted` (every partition to fetch, at its position)."""
        if not self.id:
            return dict(wanted), []
        named = {tp: offset for tp, offset in wanted.items() if self.offsets.get(tp) != offset}
        return named, [tp for tp in self.offsets if tp not in wanted]

    def completed(self, request: "SessionFetchRequest", response: Any) -> None:
        """Record what the broker holds after answering `request`."""
        error = getattr(response, "error_code", 0)  # v7+: the session's own error
        session_id = getattr(response, "session_id", 0)
        if error or not session_id or request.session_id not in (0, session_id):
            self.reset()  # e.g. the broker lost the session (restart, eviction)
            return
        self.id = session_id
        self.epoch = request.session_epoch % _MAX_EPOCH + 1
        self.offsets = dict(request.wanted)
        # A partition left out of the response was fetched and had no news: stamp it as
        # polled, as aiokafka stamps the partitions of a response (last_poll_timestamp,
        # which Faust's livelock check reads).
        now_ms = int(1000 * time.time())
        for tp in self.offsets:
            if (state := self.assignment.state_value(tp)) is not None:
                state.timestamp = now_ms


def _by_topic(partitions: Iterable[TopicPartition]) -> dict[str, list[TopicPartition]]:
    topics: dict[str, list[TopicPartition]] = {}
    for tp in partitions:
        topics.setdefault(tp.topic, []).append(tp)
    return topics


class SessionFetchRequest(FetchRequest):
    """A FetchRequest in a session. `topics` is every partition fetched, as aiokafka's
    fetcher expects when it reads the response; only the changes are encoded."""

    def __init__(self, full: FetchRequest, session: FetchSession, max_bytes: int) -> None:
        self.session = session
        self.wanted: Offsets = {TopicPartition(topic, partition): offset
                                for topic, partitions in full.topics
                                for partition, offset, _ in partitions}
        named, forgotten = session.plan(self.wanted)
        super().__init__(full._max_wait_ms, full._min_bytes, full._max_bytes,
                         full._isolation_level,
                         [(topic, [(tp.partition, named[tp], max_bytes) for tp in tps])
                          for topic, tps in _by_topic(named).items()],
                         rack_id=full._rack_id)
        self._all_topics = full.topics
        self.session_id, self.session_epoch = session.id, session.epoch
        self.forgotten = [(topic, [tp.partition for tp in tps])
                          for topic, tps in _by_topic(forgotten).items()]

    @property
    def topics(self) -> list[tuple[str, list[tuple[int, int, int]]]]:
        return self._all_topics

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION < 7:
            if self.session_id:  # only a v7+ answer opens a session: cannot happen
                raise RuntimeError("an incremental fetch to a broker without sessions")
            return super().build(request_struct_class)
        struct = super().build(request_struct_class)
        struct.__dict__.update(session_id=self.session_id, session_epoch=self.session_epoch,
                               forgotten_topics_data=self.forgotten)
        return struct


def _in_sessions(method: Callable[..., Any]) -> Callable[..., Any]:
    """Fetcher._get_actions_per_node, its fetch requests made session requests."""
    @functools.wraps(method)
    def wrapper(self: Fetcher, assignment: Any) -> Any:
        requests, *rest = method(self, assignment)
        sessions: dict[int, FetchSession] = self.__dict__.setdefault("_waiver_sessions", {})
        in_sessions = []
        for node_id, request in requests:
            session = sessions.setdefault(node_id, FetchSession())
            if session.assignment is not assignment:  # a rebalance: start afresh
                session.reset()
                session.assignment = assignment
            in_sessions.append((node_id, SessionFetchRequest(
                request, session, self._max_partition_fetch_bytes)))
        return (in_sessions, *rest)

    return wrapper


def _session_kept(send: Callable[..., Any]) -> Callable[..., Any]:
    """AIOKafkaClient.send, keeping a session request's session up to date."""
    @functools.wraps(send)
    async def wrapper(self: AIOKafkaClient, node_id: int, request: Any,
                      *args: Any, **kwargs: Any) -> Any:
        if not isinstance(request, SessionFetchRequest):
            return await send(self, node_id, request, *args, **kwargs)
        try:
            response = await send(self, node_id, request, *args, **kwargs)
        except BaseException:  # the broker may or may not have seen it
            request.session.reset()
            raise
        request.session.completed(request, response)
        return response

    return wrapper


_INSTALLED = False


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    Fetcher._get_actions_per_node = _in_sessions(Fetcher._get_actions_per_node)
    AIOKafkaClient.send = _session_kept(AIOKafkaClient.send)
    _INSTALLED = True
