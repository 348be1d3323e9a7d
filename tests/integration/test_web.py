"""The worker's HTTP API: lookup with a bearer token, metrics, OpenAPI."""

import aiohttp
import pytest

from streams.reader import OutputReader
from streams.runner import WorkerProcess
from streams.topics import TopicNames
from tests.conftest import API_TOKEN, Publisher
from tests.factories import application_dict, cancellation_dict

pytestmark = pytest.mark.integration


def base(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.settings.web_port}"


async def get(url: str, token: str | None = API_TOKEN) -> tuple[int, dict | str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        ctype = resp.headers.get("Content-Type", "")
        return resp.status, await (resp.json() if "json" in ctype else resp.text())


async def test_lookup_answers_with_masked_personal_data(
        tag: str, worker: WorkerProcess, publisher: Publisher, outputs: OutputReader,
        names: TopicNames) -> None:
    applied, waiting, ineligible = f"{tag}-a", f"{tag}-w", f"{tag}-i"
    await publisher.send_all(names.cancellations, [
        cancellation_dict(applied), cancellation_dict(waiting, penalty_krw=99000),
        cancellation_dict(ineligible, line_type="mvno")])
    await publisher.send(names.applications, application_dict(applied))
    await outputs.wait_for(lambda: len(outputs.values(
        names.refunds, lambda v: v["customer_id"] == applied)) == 1, what="refund")
    await outputs.wait_for(lambda: len(outputs.values(
        names.decisions, lambda v: v["customer_id"].startswith(tag))) == 3, what="decisions")

    status, body = await get(f"{base(worker)}/customers/{applied}")
    assert status == 200
    assert (body["eligible"], body["reason"], body["penalty_krw"], body["refund_krw"]) == (
        True, "eligible", 184000, 184000)
    assert body["application"]["status"] == "scheduled"
    assert body["payout_date"] == "2026-01-22"
    assert body["contact"] == {"name": "김*수", "phone": "010-****-5678",
                               "email": "m****@example.com", "preferred_channel": "sms"}
    status, body = await get(f"{base(worker)}/customers/{waiting}")
    assert (status, body["application"]["status"], body["payout_date"], body["refund_krw"]) == (
        200, "not_applied", None, 99000)
    status, body = await get(f"{base(worker)}/customers/{ineligible}")
    assert (status, body["eligible"], body["reason"], body["refund_krw"]) == (200, False, "mvno",
                                                                               0)


@pytest.mark.parametrize(("path", "token", "status"), [
    ("/customers/C1", None, 401),
    ("/customers/C1", "wrong-token", 401),
    ("/customers/C1", API_TOKEN[:-1], 401),
    ("/customers/no%20spaces", API_TOKEN, 400),
    ("/customers/" + "x" * 65, API_TOKEN, 400),
    ("/customers/never-seen-customer", API_TOKEN, 404),
])
async def test_lookup_errors(worker: WorkerProcess, path: str, token: str | None,
                             status: int) -> None:
    got, body = await get(base(worker) + path, token)
    assert got == status
    assert "error" in body


async def test_metrics_openapi_and_pages(worker: WorkerProcess, outputs: OutputReader,
                                         names: TopicNames, tag: str,
                                         publisher: Publisher) -> None:
    await publisher.send(names.cancellations, cancellation_dict(f"{tag}-m"))
    await outputs.wait_for(lambda: outputs.values(
        names.decisions, lambda v: v["customer_id"] == f"{tag}-m"), what="decision")
    status, text = await get(base(worker) + "/metrics", token=None)
    assert status == 200
    for name in ("waiver_events_in_total", "waiver_decisions_total",
                 "waiver_processing_seconds_bucket", "waiver_consumer_lag"):
        assert name in text, name
    eligible = [line for line in text.splitlines()
                if line.startswith('waiver_decisions_total{reason="eligible"}')]
    assert eligible and float(eligible[0].split()[-1]) >= 1
    status, spec = await get(base(worker) + "/openapi.json", token=None)
    assert status == 200 and "/customers/{customer_id}" in spec["paths"]
    status, data = await get(base(worker) + "/ops/data", token=None)
    assert status == 200 and [r["round"] for r in data["rounds"]] == [1, 2, 3]
    assert any(row["value"] >= 1 for row in data["counters"]["waiver_decisions"])
