"""The `waiver` command line as an operator types it, against the real broker: one
clear line for every mistake, input checked before anything is sent."""

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from brokers.tansu import free_port
from streams.reader import OutputReader
from streams.runner import WorkerProcess
from streams.settings import Settings
from streams.topics import TopicNames
from tests.factories import cancellation_dict

pytestmark = pytest.mark.integration


def waiver(*args: str, cwd: Path | None = None, stdin: str | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=cwd,
                          input=stdin, capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())})


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("command", [
    ["worker"], ["publish", "cancellations", "-"], ["deadline", "round", "1"], ["status"]])
def test_an_unreachable_broker_is_one_line_within_the_wait(command: list[str],
                                                           tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    line = one_line(waiver(*command, "--broker", f"kafka://{address}", "--connect-timeout", "2",
                           cwd=tmp_path, stdin=json.dumps(cancellation_dict("U1")) + "\n"))
    assert time.monotonic() - started < 15
    assert address in line and "--broker" in line, line
    assert list(tmp_path.iterdir()) == []  # no data folder left behind


def test_a_traceback_only_with_debug(tmp_path: Path) -> None:
    plain = waiver("publish", "cancellations", str(tmp_path / "missing.jsonl"))
    assert one_line(plain).startswith("waiver publish: cannot read ")
    assert plain.returncode == 2
    debug = waiver("publish", "cancellations", str(tmp_path / "missing.jsonl"), "--debug")
    assert "Traceback" in debug.stderr


def test_only_the_contract_s_input_topics_by_name(broker: str) -> None:
    line = one_line(waiver("publish", "nosuchtopic", "-", "--broker", f"kafka://{broker}",
                           stdin="{}\n"))
    for name in ("cancellations", "applications", "deadlines", "subscribers",
                 "reward-choices", "delivery-receipts", "--raw-topic"):
        assert name in line


async def test_publish_checks_every_line_and_names_the_bad_ones(broker: str,
                                                              tmp_path: Path) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:6]}."
    names = TopicNames(prefix)
    good = [cancellation_dict(f"P{i}") for i in range(3)]
    bad = dict(cancellation_dict("P9"), line_type="satellite")
    lines = [json.dumps(good[0]), json.dumps(bad), "", json.dumps(good[1]), "{oops",
             json.dumps(good[2])]
    file = tmp_path / "events.jsonl"
    file.write_text("\n".join(lines) + "\n")
    common = ["--broker", f"kafka://{broker}", "--topic-prefix", prefix]

    refused = waiver("publish", "cancellations", str(file), *common)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"{file}:2: line_type" in refused.stderr and f"{file}:5: " in refused.stderr
    assert "2 of 5 lines are not valid events; nothing published" in refused.stderr

    skipped = waiver("publish", "cancellations", str(file), "--skip-invalid", *common)
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout.strip() == \
        f"published 3 events to {names.cancellations}, skipped 2 invalid"
    piped = waiver("publish", "cancellations", "-", *common, stdin=json.dumps(good[0]) + "\n")
    assert piped.stdout.strip() == f"published 1 event to {names.cancellations}"

    reader = await OutputReader(broker, [names.cancellations]).start()
    try:
        await reader.wait_for(lambda: len(reader.records[names.cancellations]) == 4,
                              what="the published events")
        keys = sorted(r.key for r in reader.records[names.cancellations])
        assert keys == ["P0", "P0", "P1", "P2"]
    finally:
        await reader.stop()


def test_deadlines_are_checked_against_the_program(broker: str) -> None:
    common = ["--broker", f"kafka://{broker}", "--topic-prefix", f"cli-{uuid.uuid4().hex[:6]}."]
    assert one_line(waiver("deadline", "round", "7", *common)) == \
        "waiver deadline: round: 7 is not a round of the program (1, 2, 3)"
    assert one_line(waiver("deadline", "round", "1", "--at", "tomorrow", *common)) == \
        ("waiver deadline: --at: 'tomorrow' is not an ISO 8601 time, e.g. "
         "2026-01-21T10:00:00+09:00")
    notice = waiver("deadline", "reward-notice", "--at", "2026-02-02T10:00:00+09:00", *common)
    assert notice.returncode == 0, notice.stderr
    assert notice.stdout.startswith("published the reward notice at 2026-02-02T10:00:00+09:00")


def test_version() -> None:
    done = waiver("--version")
    assert done.returncode == 0 and done.stdout.startswith("waiver 0.")


def test_status_shows_each_topic_and_the_group_s_lag(worker: WorkerProcess,
                                                    settings: Settings) -> None:
    done = waiver("status", "--broker", settings.broker, "--topic-prefix",
                  settings.topic_prefix)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:]}
    names = TopicNames(settings.topic_prefix)
    assert rows["topic"] == ["partitions", "records", "group", "lag"]
    assert rows[names.cancellations][0] == "4"
    assert len(rows[names.cancellations]) == 3  # partitions, records, lag: the worker reads it
    assert len(rows[names.decisions]) == 2  # an output: no lag


def test_a_large_file_shows_its_progress(broker: str, tmp_path: Path) -> None:
    file = tmp_path / "many.jsonl"
    file.write_text("".join(json.dumps(cancellation_dict(f"M{i}")) + "\n"
                            for i in range(25000)))
    done = waiver("publish", "cancellations", str(file), "--broker", f"kafka://{broker}",
                  "--topic-prefix", f"cli-{uuid.uuid4().hex[:6]}.")
    assert done.returncode == 0, done.stderr
    assert "25,000/25,000" in done.stderr and "[####" in done.stderr


def test_the_demo_gives_the_same_counts_for_a_seed(tmp_path: Path) -> None:
    def summary(folder: str) -> list[str]:
        done = waiver("demo", "--customers", "400", "--seed", "3", "--workdir",
                      str(tmp_path / folder), timeout=240)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        # Everything but the timed progress lines and the folder it names.
        return [line for line in done.stdout.splitlines()
                if not line.startswith(("[", "waiver demo:", "broker on", "demo finished"))]

    first = summary("one")
    assert first == summary("two")
    assert any(line.startswith("checks: expected") for line in first)
