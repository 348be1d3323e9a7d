"""Incremental fetch sessions (streams/fetch_sessions.py): what each request names and
forgets, and when a session starts afresh. tests/reliability/test_fetch_sessions.py
reads through them from Apache Kafka."""

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4, FetchRequest_v11
from aiokafka.structs import TopicPartition

from streams.fetch_sessions import FetchSession, SessionFetchRequest, _session_kept

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
MAX_BYTES = 1024


class Assignment:
    """What a session reads of aiokafka's Assignment: each partition's state."""

    def __init__(self) -> None:
        self.states = {tp: SimpleNamespace(timestamp=None) for tp in (A0, A1, B0)}

    def state_value(self, tp: TopicPartition) -> SimpleNamespace | None:
        return self.states.get(tp)


def new_session() -> FetchSession:
    session = FetchSession()
    session.assignment = Assignment()
    return session


def fetch(offsets: dict[TopicPartition, int]) -> FetchRequest:
    """aiokafka's full request for these partitions."""
    topics: dict[str, list[tuple[int, int, int]]] = {}
    for tp, offset in offsets.items():
        topics.setdefault(tp.topic, []).append((tp.partition, offset, MAX_BYTES))
    return FetchRequest(100, 1, 50_000_000, 0, list(topics.items()))


def answered(session: FetchSession, offsets: dict[TopicPartition, int],
             session_id: int = 7, error_code: int = 0) -> SessionFetchRequest:
    request = SessionFetchRequest(fetch(offsets), session, MAX_BYTES)
    session.completed(request, SimpleNamespace(error_code=error_code, session_id=session_id))
    return request


def named(request: SessionFetchRequest) -> dict[TopicPartition, int]:
    return {TopicPartition(topic, p): offset for topic, parts in request._topics
            for p, offset, _ in parts}


def test_the_first_fetch_is_full_and_asks_for_a_session() -> None:
    session = new_session()
    request = SessionFetchRequest(fetch({A0: 5, B0: 0}), session, MAX_BYTES)
    assert named(request) == {A0: 5, B0: 0}
    assert (request.session_id, request.session_epoch, request.forgotten) == (0, 0, [])


def test_then_only_changed_offsets_are_named_and_the_rest_forgotten() -> None:
    session = new_session()
    answered(session, {A0: 5, A1: 3, B0: 0})
    assert (session.id, session.epoch) == (7, 1)
    request = SessionFetchRequest(fetch({A0: 9, B0: 0}), session, MAX_BYTES)
    assert named(request) == {A0: 9}  # A0 moved on, B0 did not, A1 is not fetched now
    assert request.forgotten == [("a", [1])]
    assert (request.session_id, request.session_epoch) == (7, 1)
    # aiokafka's fetcher reads the response against every partition fetched
    assert request.topics == fetch({A0: 9, B0: 0}).topics
    session.completed(request, SimpleNamespace(error_code=0, session_id=7))
    assert session.offsets == {A0: 9, B0: 0} and session.epoch == 2
    # A1 joins again at its position
    assert named(SessionFetchRequest(fetch({A0: 9, A1: 3, B0: 0}), session, MAX_BYTES)) \
        == {A1: 3}


@pytest.mark.parametrize("answer", [
    {"error_code": 70, "session_id": 0},  # FETCH_SESSION_ID_NOT_FOUND (broker restarted)
    {"error_code": 71, "session_id": 0},  # INVALID_FETCH_SESSION_EPOCH
    {"error_code": 0, "session_id": 0},   # the broker keeps no session (tansu, full cache)
    {"error_code": 0, "session_id": 8},   # not the session asked for
])
def test_a_lost_session_means_a_full_fetch_next(answer: dict[str, int]) -> None:
    session = new_session()
    answered(session, {A0: 5, B0: 0})
    request = SessionFetchRequest(fetch({A0: 6, B0: 0}), session, MAX_BYTES)
    session.completed(request, SimpleNamespace(**answer))
    assert (session.id, session.epoch, session.offsets) == (0, 0, {})
    assert named(SessionFetchRequest(fetch({A0: 6, B0: 0}), session, MAX_BYTES)) \
        == {A0: 6, B0: 0}


def test_every_partition_of_the_session_is_stamped_as_polled() -> None:
    # Faust logs an error for a partition whose last poll is 5 minutes old; a response
    # in a session leaves out the partitions without news, which were fetched all the same
    session = new_session()
    answered(session, {A0: 5, B0: 0})
    assert all(session.assignment.states[tp].timestamp for tp in (A0, B0))
    assert session.assignment.states[A1].timestamp is None  # not fetched


def test_the_epoch_wraps_to_1() -> None:
    session = new_session()
    answered(session, {A0: 0})
    session.epoch = 2**31 - 1
    answered(session, {A0: 0})
    assert session.epoch == 1


def test_a_failed_send_means_a_full_fetch_next() -> None:
    session = new_session()
    answered(session, {A0: 5})
    request = SessionFetchRequest(fetch({A0: 6}), session, MAX_BYTES)

    async def refused(*_: Any, **__: Any) -> Any:
        raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        asyncio.run(_session_kept(refused)(None, 1, request))
    assert session.id == 0


def test_encoded_with_the_session_fields_from_v7() -> None:
    session = new_session()
    answered(session, {A0: 5, B0: 0})
    request = SessionFetchRequest(fetch({A0: 8}), session, MAX_BYTES)
    struct = request.build(FetchRequest_v11)
    assert (struct.session_id, struct.session_epoch) == (7, 1)
    assert struct.topics == [("a", [(0, -1, 8, -1, MAX_BYTES)])]
    assert struct.forgotten_topics_data == [("b", [0])]
    struct.encode()  # the wire format accepts it
    # A broker without sessions never answers with one, so its fetches stay full
    full = SessionFetchRequest(fetch({A0: 8, B0: 0}), new_session(), MAX_BYTES)
    assert len(full.build(FetchRequest_v4).topics) == 2
