"""Builders for contract events: valid by default, one field changed per test."""

import itertools
import json
from typing import Any

from schemas import Application, Cancellation

_ids = itertools.count(1)


def cancellation_dict(customer_id: str = "C1", **fields: Any) -> dict[str, Any]:
    event = {
        "event_id": f"c-{customer_id}-{next(_ids)}",
        "customer_id": customer_id,
        "cancelled_at": "2026-01-05T14:03:00+09:00",
        "line_type": "postpaid",
        "termination": "voluntary",
        "last_contract_change": {"kind": "recontract", "on": "2025-06-10"},
        "penalty_krw": 184000,
        "contact": {"name": "김민수", "phone": "010-1234-5678", "email": "minsu@example.com",
                    "preferred_channel": "sms"},
    }
    event.update(fields)
    return event


def application_dict(customer_id: str = "C1", **fields: Any) -> dict[str, Any]:
    event = {
        "event_id": f"a-{customer_id}-{next(_ids)}",
        "customer_id": customer_id,
        "applied_at": "2026-01-15T10:00:00+09:00",
        "channel": "web",
    }
    event.update(fields)
    return event


def cancellation(customer_id: str = "C1", **fields: Any) -> Cancellation:
    return Cancellation.model_validate_json(json.dumps(cancellation_dict(customer_id, **fields)))


def application(customer_id: str = "C1", **fields: Any) -> Application:
    return Application.model_validate_json(json.dumps(application_dict(customer_id, **fields)))
