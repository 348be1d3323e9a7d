"""Runs last: the session worker's log never carries a full phone, e-mail or name."""

import pytest

from streams.reader import OutputReader
from streams.runner import WorkerProcess
from streams.topics import TopicNames
from tests.conftest import Publisher
from tests.factories import cancellation_dict

pytestmark = pytest.mark.integration

NAME, PHONE, EMAIL = "황보예린", "010-7345-9182", "yerin.hwangbo@example.org"


async def test_no_personal_data_in_worker_logs(
        tag: str, worker: WorkerProcess, publisher: Publisher, outputs: OutputReader,
        names: TopicNames) -> None:
    contact = {"name": NAME, "phone": PHONE, "email": EMAIL, "preferred_channel": "email"}
    good = cancellation_dict(f"{tag}-p", contact=contact)
    bad = cancellation_dict(f"{tag}-q", contact=contact, penalty_krw="lots")
    await publisher.send(names.cancellations, good)
    await publisher.send(names.cancellations, bad)
    await publisher.send(names.cancellations, f"{PHONE} {EMAIL} {NAME}".encode(),
                         key=f"{tag}-r")
    await outputs.wait_for(lambda: len(outputs.values(
        names.dead_letter, lambda v: (v["key"] or "").startswith(tag))) == 2, what="letters")
    await outputs.settle(quiet=1.0)
    log = worker.log_text()
    assert "dead letter" in log  # the events were logged about...
    for secret in (NAME, PHONE, EMAIL, "7345-9182", "yerin.hwangbo"):
        assert secret not in log  # ...without their personal data
