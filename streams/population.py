"""A generated population of customers that touches every rule (demo and load tests)."""

import json
import random
from dataclasses import dataclass, field
from typing import Any

# Cancellation timestamps: both period edges, in Seoul time and in UTC.
CANCELLED_AT = [
    "2025-08-31T23:59:00+09:00",  # a minute before the retroactive period
    "2025-08-31T15:00:00Z",  # = 2025-09-01 00:00 Seoul: first eligible minute
    "2025-10-15T11:00:00+09:00",
    "2025-12-30T18:00:00+09:00",  # last day of the retroactive period
    "2025-12-31T09:00:00+09:00",  # first day of the waiver period
    "2026-01-05T14:03:00+09:00",
    "2026-01-13T23:59:00+09:00",  # last eligible minute
    "2026-01-13T14:30:00Z",  # 23:30 Seoul, still in
    "2026-01-13T15:30:00Z",  # 00:30 on 01-14 in Seoul: out
    "2026-01-20T10:00:00+09:00",  # after the period
]
CONTRACT_CHANGES = [None, None, None,
                    {"kind": "recontract", "on": "2025-08-31"},
                    {"kind": "device_change", "on": "2025-09-01"},
                    {"kind": "new_signup", "on": "2025-11-02"},
                    {"kind": "recontract", "on": "2024-03-01"}]
FAMILY = "김이박최정강조윤장임"
GIVEN = ["민수", "서연", "지훈", "하은", "도윤", "수아", "예준", "지우", "현우", "서윤"]
APPLY_AT = {  # phase -> application timestamps (phase 0: before round 1 ... 3: after round 3)
    0: ["2026-01-14T09:00:00+09:00", "2026-01-15T23:59:00+09:00", "2026-01-10T10:00:00+09:00"],
    1: ["2026-01-16T00:00:00+09:00", "2026-01-22T13:00:00+09:00"],
    2: ["2026-01-27T10:00:00+09:00", "2026-01-29T15:00:00Z"],
    3: ["2026-01-30T11:00:00+09:00", "2026-01-31T23:59:00+09:00", "2026-02-01T09:00:00+09:00"],
}
CHANNELS = ["web", "call_center", "store"]


@dataclass
class Population:
    cancellations: list[dict[str, Any]] = field(default_factory=list)
    # applications by phase; phase 0 also holds some published before the cancellation
    applications: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    early_applications: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    # Line snapshots of customers who stay (the reward program) and their OTT choices.
    subscribers: list[dict[str, Any]] = field(default_factory=list)
    choices: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[bytes] = field(default_factory=list)


def contact(rng: random.Random, i: int) -> dict[str, Any] | None:
    name = FAMILY[i % len(FAMILY)] + GIVEN[(i // 10) % len(GIVEN)]
    phone = f"010-{rng.randrange(1000, 9999)}-{i % 10000:04d}"
    email = f"user{i}@example.com"
    kind = i % 6
    if kind == 5:
        return None if i % 12 == 5 else {"name": name, "phone": None, "email": None,
                                         "preferred_channel": None}
    return {
        "name": name,
        "phone": None if kind == 3 else phone,  # 3: e-mail only
        "email": None if kind == 2 else email,  # 2: phone only
        "preferred_channel": ["sms", "email", None, "sms", "email"][kind],
    }


def generate(customers: int, seed: int = 7) -> Population:
    rng = random.Random(seed)
    pop = Population(applications={0: [], 1: [], 2: [], 3: []})
    for i in range(customers):
        cid = f"C{i:07d}"
        event = {
            "event_id": f"c-{i:07d}",
            "customer_id": cid,
            "cancelled_at": CANCELLED_AT[i % len(CANCELLED_AT)] if i % 3 == 0
            else CANCELLED_AT[rng.choice([2, 3, 4, 5, 6, 7])],
            "line_type": rng.choices(["postpaid", "prepaid", "mvno", "iot"], [80, 8, 7, 5])[0],
            "termination": "involuntary" if rng.random() < 0.04 else "voluntary",
            "last_contract_change": CONTRACT_CHANGES[rng.randrange(len(CONTRACT_CHANGES))],
            "penalty_krw": rng.choice([0, 36000, 88000, 121500, 184000, 250000, 412300]),
            "contact": contact(rng, i),
        }
        pop.cancellations.append(event)
        if i % 50 == 0:
            pop.duplicates.append(event)  # the same event delivered twice
        phase = rng.choices([None, 0, 1, 2, 3], [40, 20, 15, 15, 10])[0]
        if phase is not None:
            app = {"event_id": f"a-{i:07d}", "customer_id": cid,
                   "applied_at": rng.choice(APPLY_AT[phase]), "channel": rng.choice(CHANNELS)}
            if phase == 0 and i % 4 == 0:
                pop.early_applications.append(app)  # arrives before its cancellation
            else:
                pop.applications[phase].append(app)
            if i % 40 == 1:  # a second application by the same customer
                second = dict(app, event_id=f"a2-{i:07d}", applied_at=APPLY_AT[3][1])
                pop.applications[3].append(second)
    for i in range(customers // 3):
        cid = f"S{i:07d}"
        line = rng.choices(["postpaid", "prepaid", "mvno", "iot"], [80, 10, 6, 4])[0]
        status = rng.choices(["active", "suspended", "cancelled"], [85, 10, 5])[0]
        as_of = rng.choice(["2026-01-02T09:00:00+09:00", "2026-01-13T23:00:00+09:00",
                            "2026-01-13T14:00:00Z"])
        pop.subscribers.append({"event_id": f"s-{i:07d}", "customer_id": cid,
                                "line_type": line, "status": status, "as_of": as_of,
                                "contact": contact(rng, i)})
        if i % 10 == 0:
            pop.choices.append({"event_id": f"o-{i:07d}", "customer_id": cid,
                                "service": rng.choice(["OTT-A", "OTT-B"])})
        if i % 40 == 0:  # a second choice, refused
            pop.choices.append({"event_id": f"o2-{i:07d}", "customer_id": cid,
                                "service": "OTT-A"})
    bad = [b"not json at all", b"\xff\xfe\x00garbage",
           json.dumps({"event_id": "c-bad-1", "customer_id": "C9999991"}).encode(),
           json.dumps({**pop.cancellations[0], "event_id": "c-bad-2", "customer_id": "C9999992",
                       "penalty_krw": -100}).encode(),
           json.dumps({**pop.cancellations[0], "event_id": "c-bad-3", "customer_id": "C9999993",
                       "cancelled_at": "2026-02-30T10:00:00+09:00"}).encode(),
           json.dumps({**pop.cancellations[0], "event_id": "c-bad-4", "customer_id": "C9999994",
                       "line_type": "satellite"}).encode()]
    pop.malformed = bad
    return pop
