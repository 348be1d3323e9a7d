"""A guidance round's fast path writes what the pydantic path writes: for thousands of
generated customers (hostile names included), the same tasks, byte for byte, a new
state that parses to the same model, and the same metric counts."""

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from rules.customer import on_application, on_cancellation, on_round
from rules.messages import clean_text
from rules.program import load_program
from schemas.outputs import Notification
from schemas.state import CustomerState
from streams.encoded import Counts, encode_effects, encode_state
from streams.guidance_round import guidance_for
from tests.factories import application, cancellation

PROGRAM = load_program()
ROUND_AT = datetime.fromisoformat("2026-01-21T10:00:00+09:00")

HOSTILE = ['"', "\\", "<script>alert(1)</script>", "&amp;", "'", "\u2028", "😀", "👩‍👩‍👧",
           "\t", "\n", "\x00", "김민수", "Ω", "{{ name }}", "{% raw %}", "\x1b[31m"]
names = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=200),
    st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=40).map("".join),
    st.lists(st.sampled_from([*HOSTILE, "a", " ", "가"]), min_size=60, max_size=200)
    .map(lambda pieces: "".join(pieces)[:200]),
)
contacts = st.one_of(st.none(), st.fixed_dictionaries({
    "name": names,
    "phone": st.one_of(st.none(), st.just("010-1234-5678"), st.just("+82 10 2000 0001")),
    "email": st.one_of(st.none(), st.just("minsu@example.com"), st.just('a"b\\c@x.kr')),
    "preferred_channel": st.sampled_from([None, "sms", "email"]),
}))
customers = st.fixed_dictionaries({
    "contact": contacts,
    "line_type": st.sampled_from(["postpaid", "postpaid", "prepaid", "mvno", "iot"]),
    "penalty_krw": st.sampled_from([0, 1, 999, 184000, 99_999_999]),
    "applied": st.booleans(),
    "earlier_rounds": st.sets(st.sampled_from([1, 2, 3]), max_size=2),
    "round_no": st.sampled_from([1, 2, 3]),
    "now": st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 3, 1),
                        timezones=st.just(UTC)),
    "round_at": st.sampled_from([ROUND_AT, ROUND_AT + timedelta(hours=13, minutes=7)]),
})


def stored_state(customer: dict, index: int) -> CustomerState:
    event = cancellation(f"C{index}", line_type=customer["line_type"],
                         penalty_krw=customer["penalty_krw"], contact=customer["contact"])
    state = on_cancellation(None, event, 3, PROGRAM, customer["now"]).state
    if customer["applied"]:
        state = on_application(state, application(f"C{index}"), 3, PROGRAM).state
    for round_no in sorted(customer["earlier_rounds"]):
        state = on_round(state, round_no, ROUND_AT, PROGRAM, customer["now"]).state
    return state


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customer=customers, index=st.integers(min_value=0, max_value=10**6))
def test_the_fast_path_writes_what_the_pydantic_path_writes(customer: dict, index: int
                                                            ) -> None:
    state = stored_state(customer, index)
    round_no, now = customer["round_no"], customer["now"]
    slow_counts: Counts = Counter()
    effects = on_round(state, round_no, customer["round_at"], PROGRAM, now)
    slow = encode_effects(effects, slow_counts)
    fast_counts: Counts = Counter()
    fast = guidance_for(encode_state(state), round_no, customer["round_at"], PROGRAM, now,
                        fast_counts)

    if fast is None:
        assert slow[1] == [] and slow[2] is None
        assert not effects.changed
        return
    assert fast[0] == slow[0] == state.customer_id
    assert fast[1] == slow[1]  # the tasks' bytes, topic by topic
    assert fast_counts == slow_counts
    assert (fast[2] is None) == (slow[2] is None)
    if fast[2] is not None:
        assert slow[2] is not None
        assert CustomerState.model_validate_json(fast[2]) == \
            CustomerState.model_validate_json(slow[2]) == effects.state
    for _, value in fast[1]:
        task = Notification.model_validate_json(value)
        assert task == effects.notifications[0]
        if task.html is not None:  # the name is the only customer text in it
            contact = state.cancellation.contact if state.cancellation else None
            name = clean_text(contact.name if contact else None, fallback="고객")
            assert "<script>" not in task.html
            assert str(escape(name)) in task.html
