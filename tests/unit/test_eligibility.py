import pytest

from rules.eligibility import eligibility_reason
from rules.program import load_program
from tests.factories import cancellation

PROGRAM = load_program()


@pytest.mark.parametrize(
    ("cancelled_at", "reason"),
    [
        ("2025-08-31T23:59:59+09:00", "cancelled_outside_period"),
        ("2025-09-01T00:00:00+09:00", "eligible"),
        ("2025-08-31T15:00:00Z", "eligible"),  # 2025-09-01 00:00 in Seoul
        ("2025-08-31T14:59:59Z", "cancelled_outside_period"),
        ("2025-12-30T12:00:00+09:00", "eligible"),  # retroactive period's last day
        ("2025-12-31T00:00:00+09:00", "eligible"),  # waiver period's first day
        ("2026-01-13T23:59:59+09:00", "eligible"),
        ("2026-01-14T00:00:00+09:00", "cancelled_outside_period"),
        ("2026-01-13T14:59:59Z", "eligible"),
        ("2026-01-13T15:30:00Z", "cancelled_outside_period"),  # the contract's example
        ("2026-01-13T10:00:00-05:00", "cancelled_outside_period"),  # 01-14 00:00 Seoul
        ("2026-01-13T09:59:00-05:00", "eligible"),
    ],
)
def test_cancellation_period_edges_in_seoul_time(cancelled_at: str, reason: str) -> None:
    assert eligibility_reason(cancellation(cancelled_at=cancelled_at), PROGRAM) == reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"line_type": "postpaid"}, "eligible"),
        ({"line_type": "prepaid"}, "eligible"),
        ({"line_type": "mvno"}, "mvno"),
        ({"line_type": "iot"}, "iot"),
        ({"termination": "involuntary"}, "involuntary_termination"),
        ({"last_contract_change": None}, "eligible"),
        ({"last_contract_change": {"kind": "recontract", "on": "2025-08-31"}}, "eligible"),
        ({"last_contract_change": {"kind": "recontract", "on": "2025-09-01"}},
         "recent_contract_change"),
        ({"last_contract_change": {"kind": "new_signup", "on": "2025-09-01"}},
         "recent_contract_change"),
        ({"last_contract_change": {"kind": "device_change", "on": "2025-12-31"}},
         "recent_contract_change"),
        ({"last_contract_change": {"kind": "device_change", "on": "2024-12-31"}}, "eligible"),
    ],
)
def test_each_exclusion(fields: dict, reason: str) -> None:
    assert eligibility_reason(cancellation(**fields), PROGRAM) == reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        # every rule fails: the period comes first
        ({"cancelled_at": "2026-02-01T10:00:00+09:00", "line_type": "mvno",
          "termination": "involuntary"}, "cancelled_outside_period"),
        ({"line_type": "mvno", "termination": "involuntary"}, "mvno"),
        ({"line_type": "iot", "termination": "involuntary"}, "iot"),
        ({"termination": "involuntary",
          "last_contract_change": {"kind": "recontract", "on": "2025-10-01"}},
         "involuntary_termination"),
    ],
)
def test_first_failing_rule_in_contract_order(fields: dict, reason: str) -> None:
    assert eligibility_reason(cancellation(**fields), PROGRAM) == reason
