"""Rounds on a schedule: the worker fires a round whose time has come, once, across
restarts; `waiver rounds` shows the schedule and what fired; a round fired by hand
is not fired again by the schedule."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from rules.program import DEFAULT_PROGRAM
from streams.reader import OutputReader
from streams.runner import WorkerProcess
from streams.topics import TopicNames
from tests.conftest import PARTITIONS, Publisher, worker_settings
from tests.factories import cancellation_dict

pytestmark = pytest.mark.integration

DUE = "2026-01-21T10:00:00+09:00"  # past: due at once
LATER = "2099-01-26T10:00:00+09:00"


def program_with_times(folder: Path) -> Path:
    text = (Path(__file__).parents[2] / "rules" / DEFAULT_PROGRAM).read_text(encoding="utf-8")
    text = text.replace('template = "guidance_round_1"\n',
                        f'template = "guidance_round_1"\nat = {DUE}\n')
    text = text.replace('template = "guidance_round_2"\n',
                        f'template = "guidance_round_2"\nat = {LATER}\n')
    path = folder / "program.toml"
    path.write_text(text, encoding="utf-8")
    return path


def waiver(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True,
                          text=True, timeout=60)


async def test_a_due_round_fires_once_across_restarts(broker: str, tmp_path: Path,
                                                      publisher: Publisher) -> None:
    program = program_with_times(tmp_path)
    settings = worker_settings(broker, tmp_path, program_file=str(program))
    names = TopicNames(settings.topic_prefix)
    common = ["--broker", settings.broker, "--topic-prefix", settings.topic_prefix,
              "--partitions", str(PARTITIONS), "--program-file", str(program)]
    # Customers first, decided before the schedule can fire: the worker is not up yet.
    await publisher.send_all(names.cancellations,
                             [cancellation_dict(f"S{i}") for i in range(20)])
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    reader = await OutputReader(broker, [names.round_progress, names.sms, names.email]
                                ).start()
    try:
        await asyncio.to_thread(worker.start)

        def done(event_id: str) -> set[int]:
            return {p["partition"] for p in reader.values(
                names.round_progress, lambda v: v["event_id"] == event_id)}

        await reader.wait_for(lambda: done("schedule-1") == set(range(PARTITIONS)),
                              timeout=60, what="round 1, fired by the schedule")
        # Fired by hand: the schedule does not fire round 3 (it has no time), and the
        # record keeps a restarted worker from firing round 1 again.
        by_hand = waiver("deadline", "round", "3", "--at", "2026-01-29T21:30:00+09:00",
                         *common)
        assert by_hand.returncode == 0, by_hand.stderr
        await reader.wait_for(lambda: done("d-round-3") == set(range(PARTITIONS)),
                              timeout=60, what="round 3, fired by hand")
        worker.stop()
        await asyncio.to_thread(worker.start)
        await asyncio.sleep(4 * 1.0)  # four checks of the schedule
        await reader.settle(quiet=1.5)
        progress = reader.values(names.round_progress)
        assert sorted(p["event_id"] for p in progress) == \
            ["d-round-3"] * PARTITIONS + ["schedule-1"] * PARTITIONS
        tasks = reader.values(names.sms) + reader.values(names.email)
        assert sorted(t["round"] for t in tasks) == [1] * 20 + [3] * 20

        shown = waiver("rounds", *common)
        assert shown.returncode == 0, shown.stderr
        rows = [line.split() for line in shown.stdout.splitlines()]
        assert rows[1] == ["1", DUE, "schedule-1", f"{PARTITIONS}/{PARTITIONS}"]
        assert rows[2] == ["2", LATER, "-", f"0/{PARTITIONS}"]
        assert rows[3] == ["3", "by", "hand", "d-round-3", f"{PARTITIONS}/{PARTITIONS}"]
    finally:
        await reader.stop()
        worker.stop()
