import uuid
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import messages
from rules.customer import on_cancellation, on_round
from rules.messages import (
    NOTIFICATION_NAMESPACE,
    _round_constants,
    clean_text,
    euc_kr_length,
    notification_id,
    render,
    render_for,
    sms_type,
    won,
)
from rules.program import load_program
from tests.factories import cancellation

PROGRAM = load_program()
NOW = datetime.fromisoformat("2026-01-21T10:00:00+09:00")


def task(round_no: int = 1, **contact):
    base = {"name": "김민수", "phone": "010-1234-5678", "email": "minsu@example.com",
            "preferred_channel": "sms"}
    base.update(contact)
    state = on_cancellation(None, cancellation(customer_id="C77", contact=base), 0, PROGRAM,
                            NOW).state
    return on_round(state, round_no, NOW, PROGRAM, NOW).notifications[0]


@pytest.mark.parametrize(("amount", "text"),
                         [(0, "0원"), (999, "999원"), (184000, "184,000원"),
                          (1234567, "1,234,567원")])
def test_won(amount: int, text: str) -> None:
    assert won(amount) == text


@pytest.mark.parametrize("round_no", [1, 2, 3])
@pytest.mark.parametrize("channel", ["sms", "email"])
def test_body_names_customer_amount_deadline_and_channels(round_no: int, channel: str) -> None:
    t = task(round_no, preferred_channel=channel)
    assert t.channel == channel and t.round == round_no
    assert t.template == f"guidance_round_{round_no}"
    for text in ("김민수", "184,000원", "1월 31일", "홈페이지", "고객센터", "매장"):
        assert text in t.body
    assert ("마지막 안내" in t.body) == (round_no == 3)
    if channel == "email":
        assert t.subject and "184,000원" in t.subject
        assert t.html and "<li>매장</li>" in t.html and "1월 31일" in t.html
        assert t.message_type is None and t.to == "minsu@example.com"
    else:
        assert t.subject is None and t.html is None and t.to == "010-1234-5678"


def test_sms_or_lms_by_euc_kr_bytes() -> None:
    assert euc_kr_length("가" * 45) == 90
    assert sms_type("가" * 45) == "SMS"
    assert sms_type("가" * 45 + "a") == "LMS"
    assert sms_type("a" * 90) == "SMS"
    assert euc_kr_length("😀") == 2  # not in EUC-KR: counted as a 2-byte substitute
    assert task().message_type == ("SMS" if euc_kr_length(task().body) <= 90 else "LMS")


def test_long_guidance_is_lms() -> None:
    assert task().message_type == "LMS"


def test_notification_id_depends_on_customer_and_round_only() -> None:
    assert notification_id("C1", 1) == notification_id("C1", 1)
    assert len({notification_id("C1", 1), notification_id("C1", 2),
                notification_id("C2", 1)}) == 3
    assert task(1).notification_id == notification_id("C77", 1)


@pytest.mark.parametrize(
    "name",
    ["{{ 7*7 }}", "{% for x in range(3) %}X{% endfor %}", "{{ self.__init__.__globals__ }}",
     "<script>alert(1)</script>", "김\x00민\x1b[31m수\u202e", "A & B <b>"],
)
def test_names_are_text_never_template_code(name: str) -> None:
    sms = task(name=name)
    email = task(name=name, preferred_channel="email")
    assert "49" not in sms.body and "XXX" not in sms.body
    assert "<script>" not in (email.html or "")
    assert not any(ord(ch) < 32 and ch != "\n" for ch in sms.body)
    if "<" in name:
        assert "&lt;" in (email.html or "")
    if "{{" in name:
        assert "{{" in sms.body  # printed literally


def test_clean_text() -> None:
    assert clean_text("  김\t민\n수  ", "고객") == "김 민 수"
    assert clean_text(None, "고객") == "고객"
    assert clean_text("\x00\x01", "고객") == "고객"
    assert len(clean_text("가" * 500, "고객")) == 40


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=50), refund=st.integers(min_value=0, max_value=10**9),
       round_no=st.sampled_from([1, 2, 3]),
       part=st.sampled_from(["sms", "subject", "txt", "html"]))
def test_stencil_renders_what_jinja_renders(name: str, refund: int, round_no: int,
                                            part: str) -> None:
    """A round renders each template once; every customer's text must still equal a
    full Jinja render, HTML escaping included."""
    constants = _round_constants(PROGRAM, round_no)
    template = PROGRAM.rounds[round_no].template
    cleaned = clean_text(name, fallback="고객")
    full = render(template, part, {**dict(constants), "name": cleaned, "refund_krw": refund})
    assert render_for(template, part, constants, cleaned, refund) == full


@pytest.mark.parametrize("logic", [
    lambda c: "큰 금액" if c["refund_krw"] > 100 else "작은 금액",  # tests the amount
    lambda c: c["name"].upper(),  # transforms the name
])
def test_a_template_that_does_more_than_print_is_rendered_per_customer(monkeypatch,
                                                                       logic) -> None:
    monkeypatch.setattr(messages, "render", lambda template, part, context: logic(context))
    constants = (("round", 1),)
    key = f"logic-{id(logic)}"
    assert messages._stencil(key, "sms", constants) is None
    assert render_for(key, "sms", constants, "kim", 50) == logic({"name": "kim",
                                                                  "refund_krw": 50})


@given(customer_id=st.text(min_size=1, max_size=30), round_no=st.integers(1, 3),
       fallback=st.booleans())
def test_notification_id_is_uuid5(customer_id: str, round_no: int, fallback: bool) -> None:
    suffix = "/fallback" if fallback else ""
    expected = uuid.uuid5(NOTIFICATION_NAMESPACE, f"{customer_id}/guidance/{round_no}{suffix}")
    assert notification_id(customer_id, round_no, fallback) == str(expected)


def test_a_guidance_sms_reads_as_the_carrier_wrote_it() -> None:
    program = PROGRAM.with_carrier_name("한빛모바일")
    state = on_cancellation(None, cancellation(customer_id="C78", contact={
        "name": "김민수", "phone": "010-1234-5678", "preferred_channel": "sms"}), 0, program,
        NOW).state
    body = on_round(state, 1, NOW, program, NOW).notifications[0].body
    assert body.startswith("[한빛모바일] 김민수 고객님, 해지 위약금 환급 ")
    assert "184,000원, 1월 31일까지 홈페이지, 고객센터, 매장에서 신청해 주세요." in body


def test_the_carrier_name_is_not_an_application_channel() -> None:
    with pytest.raises(ValueError, match="carrier_name: '고객센터' is an application channel"):
        PROGRAM.with_carrier_name("고객센터")
