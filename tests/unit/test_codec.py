import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import Application, Cancellation, Deadline
from streams.codec import (
    MAX_DEAD_LETTER_KEY,
    MAX_DEAD_LETTER_VALUE,
    BadMessage,
    dead_letter,
    parse,
)
from tests.factories import application_dict, cancellation_dict

GOOD = cancellation_dict()


def broken(**changes) -> bytes:
    event = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            event.pop(key)
        else:
            event[key] = value
    return json.dumps(event).encode()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", "value: not valid JSON"),
        (b"\xff\xfe{}", "value: not valid UTF-8"),
        (b"[1, 2]", "value"),
        (b"", "value: not valid JSON"),
        (broken(cancelled_at=...), "cancelled_at: Field required"),
        (broken(customer_id=...), "customer_id: Field required"),
        (broken(cancelled_at="2026-02-30T10:00:00+09:00"), "cancelled_at"),
        (broken(cancelled_at="2026-01-05T14:03:00"), "cancelled_at"),  # no offset
        (broken(cancelled_at="yesterday"), "cancelled_at"),
        (broken(penalty_krw=-1), "penalty_krw"),
        (broken(penalty_krw="184000"), "penalty_krw"),
        (broken(penalty_krw=1.5), "penalty_krw"),
        (broken(penalty_krw=True), "penalty_krw"),
        (broken(line_type="satellite"), "line_type"),
        (broken(termination=None), "termination"),
        (broken(customer_id=""), "customer_id"),
        (broken(customer_id=123), "customer_id"),
        (broken(last_contract_change={"kind": "upgrade", "on": "2025-10-01"}),
         "last_contract_change.kind"),
        (broken(last_contract_change={"kind": "recontract", "on": "2025-02-29"}),
         "last_contract_change.on"),
        (broken(contact={"phone": "call me"}), "contact.phone"),
        (broken(contact={"email": "nobody"}), "contact.email"),
        (broken(contact={"preferred_channel": "fax"}), "contact.preferred_channel"),
    ],
)
def test_bad_cancellations_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse(Cancellation, raw)
    assert str(caught.value).startswith(field), str(caught.value)


def test_unknown_fields_are_ignored_and_contact_is_optional() -> None:
    event = dict(GOOD, extra_field={"x": 1})
    event.pop("contact")
    event.pop("last_contract_change")
    parsed = parse(Cancellation, json.dumps(event).encode())
    assert parsed.contact is None and parsed.last_contract_change is None


def test_applications_and_deadlines() -> None:
    assert parse(Application, json.dumps(application_dict()).encode()).channel == "web"
    with pytest.raises(BadMessage, match=r"^channel"):
        parse(Application, json.dumps(application_dict(channel="fax")).encode())
    deadline = {"event_id": "d-round-1", "kind": "guidance_round", "round": 1,
                "at": "2026-01-21T10:00:00+09:00"}
    assert parse(Deadline, json.dumps(deadline).encode()).round == 1
    with pytest.raises(BadMessage, match=r"^kind"):
        parse(Deadline, json.dumps(dict(deadline, kind="party")).encode())
    with pytest.raises(BadMessage, match=r"^round"):
        parse(Deadline, json.dumps(dict(deadline, round=0)).encode())


def test_dead_letter_keeps_the_raw_message() -> None:
    letter = dead_letter("t", 3, 17, b"C9", b"\xffbad", "value: not valid UTF-8",
                         now=__import__("datetime").datetime(2026, 1, 1))
    assert (letter.source_topic, letter.partition, letter.offset, letter.key) == ("t", 3, 17, "C9")
    assert letter.value == "\ufffdbad"
    huge = dead_letter("t", 0, 0, None, b"x" * (MAX_DEAD_LETTER_VALUE + 10), "e",
                       now=letter.received_at)
    assert len(huge.value) == MAX_DEAD_LETTER_VALUE and "truncated" in huge.error
    long_key = dead_letter("t", 0, 0, b"k" * 5000, b"{}", "e", now=letter.received_at)
    assert len(long_key.key) == MAX_DEAD_LETTER_KEY
    assert long_key.error == "e (key truncated from 5000 characters)"


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                 lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                 max_leaves=20).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({k: st.one_of(st.just(v), st.integers(), st.text(), st.none())
                           for k, v in GOOD.items()}).map(lambda v: json.dumps(v).encode()),
))
def test_parse_either_returns_a_model_or_names_the_problem(raw: bytes) -> None:
    for model in (Cancellation, Application, Deadline):
        try:
            parse(model, raw)
        except BadMessage as exc:
            assert ":" in str(exc)
