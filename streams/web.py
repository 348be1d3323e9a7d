"""The worker's HTTP API and pages (Faust web views).

- `GET /customers/{customer_id}`: one customer's eligibility, refund and rounds,
  routed to the worker that owns the customer's partition; bearer token from
  WAIVER_API_TOKEN, compared in constant time; personal data masked.
- `GET /metrics`: Prometheus exposition. `GET /ops`: the same figures for people.
- `GET /agent`: a lookup page for customer-service agents.
- `GET /openapi.json`: the API description.
"""

import hmac
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

from faust.exceptions import SameNode
from faust.web import Request, Response, View

from schemas.state import CustomerState
from streams.privacy import mask_email, mask_name, mask_phone
from streams.writer import store_of

if TYPE_CHECKING:
    from streams.app import Pipeline

PROMETHEUS_TYPE = "text/plain; version=0.0.4"
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def authorized(request: Request, token: str | None) -> bool:
    if not token:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                               token.encode())


def answer(state: CustomerState) -> dict[str, Any]:
    """The lookup answer: what a customer-service agent may see."""
    decision, refund, cancellation = state.decision, state.refund, state.cancellation
    contact = cancellation.contact if cancellation else state.subscriber_contact
    if refund is not None:
        application = {"status": refund.status, "reason": refund.reason,
                       "application_event_id": refund.application_event_id}
    elif state.pending_applications:
        application = {"status": "pending_cancellation", "reason": None,
                       "application_event_id": state.pending_applications[-1].event_id}
    else:
        application = {"status": "not_applied", "reason": None, "application_event_id": None}
    return {
        "customer_id": state.customer_id,
        "eligible": decision.eligible if decision else None,
        "reason": decision.reason if decision else None,
        "penalty_krw": decision.penalty_krw if decision else None,
        "refund_krw": decision.refund_krw if decision else None,
        "cancelled_at": cancellation.cancelled_at.isoformat() if cancellation else None,
        "application": application,
        "payout_date": refund.payout_date.isoformat() if refund and refund.payout_date else None,
        "rounds_sent": [{"round": n, "channel": r.channel, "notification_id": r.notification_id,
                         "send_after": r.send_after.isoformat(),
                         "delivery": delivery_of(state, r.notification_id)}
                        for n, r in sorted(state.rounds_sent.items())],
        "unreachable_rounds": sorted(state.unreachable_rounds),
        "rewards": {
            "line_status": state.subscription.status if state.subscription else None,
            "granted": state.rewards_granted,
            "ott_choice": state.ott_choice,
            "notice": None if state.reward_notice is None else {
                "channel": state.reward_notice.channel,
                "send_after": state.reward_notice.send_after.isoformat()},
        },
        "contact": None if contact is None else {
            "name": mask_name(contact.name), "phone": mask_phone(contact.phone),
            "email": mask_email(contact.email), "preferred_channel": contact.preferred_channel},
    }


def delivery_of(state: CustomerState, notification_id: str) -> dict[str, Any] | None:
    """The gateways' report on a round's task, and on its fallback if one was sent."""
    delivery = state.deliveries.get(notification_id)
    if delivery is None:
        return None
    out: dict[str, Any] = {"status": delivery.status, "reason": delivery.reason}
    for nid, other in state.deliveries.items():
        if other.fallback_for == notification_id:
            out["fallback"] = {"notification_id": nid, "channel": other.channel,
                               "status": other.status, "reason": other.reason}
    return out


def page(name: str) -> str:
    return resources.files("streams").joinpath("pages", name).read_text(encoding="utf-8")


def attach(p: "Pipeline") -> None:
    app = p.app

    @app.page("/customers/{customer_id}")
    class CustomerLookup(View):
        async def get(self, request: Request, customer_id: str) -> Response:
            if not authorized(request, p.settings.api_token):
                return self.json({"error": "missing or wrong bearer token"}, status=401,
                                 headers={"WWW-Authenticate": "Bearer"})
            if not CUSTOMER_ID.match(customer_id):
                return self.json({"error": "customer_id: 1-64 letters, digits, _ . : -"},
                                 status=400)
            try:
                return await app.router.route_req(p.customers.name, customer_id, self.web,
                                                   request)
            except SameNode:
                pass
            stored = store_of(p.customers).get_in(p.partition_for(customer_id), customer_id)
            if stored is None:
                return self.json({"error": "unknown customer"}, status=404)
            state = CustomerState.model_validate_json(stored)
            return self.json(answer(state))

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            # aiohttp takes the charset separately; the exposition format is UTF-8.
            return self.bytes(p.metrics.exposition(), content_type=PROMETHEUS_TYPE)

    @app.page("/ops")
    class OpsPage(View):
        async def get(self, request: Request) -> Response:
            return self.html(page("ops.html"))

    @app.page("/ops/data")
    class OpsData(View):
        async def get(self, request: Request) -> Response:
            return self.json(ops_figures(p))

    @app.page("/agent")
    class AgentPage(View):
        async def get(self, request: Request) -> Response:
            return self.html(page("agent.html"))

    @app.page("/openapi.json")
    class OpenApi(View):
        async def get(self, request: Request) -> Response:
            return self.json(OPENAPI)


def ops_figures(p: "Pipeline") -> dict[str, Any]:
    """This worker's figures for the ops page."""
    snapshot = p.metrics.snapshot()
    owned = sorted(p.owned_partitions())
    done_here = [store_of(p.rounds_done).get_in(part, str(part)) or {} for part in owned]
    rounds = []
    for round_no in sorted(p.program.rounds):
        finished = [done[str(round_no)] for done in done_here if str(round_no) in done]
        sent = sum(f.get("sent", 0) for f in finished)
        unreachable = sum(f.get("unreachable", 0) for f in finished)
        rounds.append({"round": round_no, "partitions_done": len(finished),
                       "partitions": len(owned), "sent": sent, "due": sent + unreachable,
                       "unreachable": unreachable})
    return {"worker": p.settings.url, "partitions": owned, "counters": snapshot,
            "rounds": rounds, "recent_dead_letters": list(p.recent_dead_letters)}


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "waiver-pipeline lookup", "version": "1.0.0",
             "description": "Eligibility and expected refund of one customer."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}},
                      "required": ["error"]},
            "Customer": {
                "type": "object",
                "required": ["customer_id", "eligible", "reason", "penalty_krw", "refund_krw",
                             "application", "payout_date", "rounds_sent"],
                "properties": {
                    "customer_id": {"type": "string"},
                    "eligible": {"type": "boolean", "nullable": True},
                    "reason": {"type": "string", "nullable": True, "enum": [
                        "eligible", "cancelled_outside_period", "mvno", "iot",
                        "involuntary_termination", "recent_contract_change", None]},
                    "penalty_krw": {"type": "integer", "nullable": True},
                    "refund_krw": {"type": "integer", "nullable": True},
                    "cancelled_at": {"type": "string", "format": "date-time",
                                     "nullable": True},
                    "application": {"type": "object", "properties": {
                        "status": {"type": "string", "enum": [
                            "not_applied", "pending_cancellation", "scheduled", "rejected"]},
                        "reason": {"type": "string", "nullable": True},
                        "application_event_id": {"type": "string", "nullable": True}}},
                    "payout_date": {"type": "string", "format": "date", "nullable": True},
                    "rounds_sent": {"type": "array", "items": {"type": "object", "properties": {
                        "round": {"type": "integer"}, "channel": {"type": "string"},
                        "notification_id": {"type": "string"},
                        "send_after": {"type": "string", "format": "date-time"}}}},
                    "unreachable_rounds": {"type": "array", "items": {"type": "integer"}},
                    "contact": {"type": "object", "nullable": True, "description":
                                "masked: 김*수, 010-****-5678, m****@example.com"},
                },
            },
        },
    },
    "paths": {
        "/customers/{customer_id}": {"get": {
            "summary": "Look up one customer",
            "security": [{"bearer": []}],
            "parameters": [{"name": "customer_id", "in": "path", "required": True,
                            "schema": {"type": "string",
                                       "pattern": CUSTOMER_ID.pattern}}],
            "responses": {
                "200": {"description": "the customer", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Customer"}}}},
                "400": {"description": "malformed customer id", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "no or wrong bearer token", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "404": {"description": "unknown customer", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }},
    },
}
