"""A round computed in pool processes equals the same round computed in the worker,
chunk order included, and survives the death of a pool process."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from rules.customer import on_cancellation, on_round
from rules.program import load_program
from schemas.outputs import Notification
from schemas.state import CustomerState
from streams import rounds
from streams.encoded import encode_state
from streams.rounds import Round, RoundPool, apply_round, available_cpus
from tests.factories import cancellation

PROGRAM = load_program()
NOW = datetime.fromisoformat("2026-01-21T10:00:00+09:00")
ROUND_1 = Round("guidance_round", 1, NOW, NOW)
ROOT = Path(__file__).resolve().parents[2]


def population(n: int) -> list[bytes]:
    """SMS and e-mail customers, unreachable ones, refused ones, one already sent."""
    contacts = [
        {"name": "김민수", "phone": "010-1234-5678", "email": None, "preferred_channel": "sms"},
        {"name": "이영희", "phone": None, "email": "yh@example.com", "preferred_channel": "email"},
        {"name": "박", "phone": None, "email": None, "preferred_channel": None},
    ]
    states = []
    for i in range(n):
        line = "iot" if i % 7 == 6 else "postpaid"
        event = cancellation(f"C{i:05d}", line_type=line, contact=contacts[i % 3])
        state = on_cancellation(None, event, 0, PROGRAM, NOW).state
        if i == 4:
            state = on_round(state, 1, NOW, PROGRAM, NOW).state
        states.append(encode_state(state))
    return states


async def collect(pool: RoundPool, states: list[bytes], job: Round = ROUND_1) -> list:
    return [chunk async for chunk in pool.chunks(states, job)]


async def test_pool_chunks_equal_the_worker_s_own() -> None:
    states = population(50)
    here = await collect(RoundPool(PROGRAM, processes=0, min_customers=1, chunk=8), states)
    pool = RoundPool(PROGRAM, processes=2, min_customers=1, chunk=8)
    try:
        there = await collect(pool, states)
    finally:
        pool.close()
    assert there == here
    assert len(here) == 7  # 50 customers in chunks of 8
    assert here[0] == apply_round(states[:8], ROUND_1, PROGRAM)
    customers = [customer for encoded, _ in here for customer in encoded]
    # Every reachable eligible customer but the one already sent gets one task.
    records = [(output, Notification.model_validate_json(value))
               for _, sent, _ in customers for output, value in sent]
    tasks = [task for _, task in records]
    eligible = [i for i in range(50) if i % 7 != 6]
    expected = [f"C{i:05d}" for i in eligible if i % 3 != 2 and i != 4]
    assert [task.customer_id for task in tasks] == expected
    assert all(output == task.channel for output, task in records)
    assert {task.channel for task in tasks} == {"sms", "email"}
    # Unreachable customers are recorded once; their states change, with no record.
    counts = sum((c for _, c in here), start=type(here[0][1])())
    assert counts["unreachable", ("1",)] == len([i for i in eligible if i % 3 == 2])
    assert counts["notifications", ("1", "sms")] + counts["notifications", ("1", "email")] \
        == len(expected)
    for _, _, stored in customers:
        state = CustomerState.model_validate_json(stored)
        assert 1 in state.rounds_sent or 1 in state.unreachable_rounds


async def test_small_rounds_stay_in_the_worker() -> None:
    pool = RoundPool(PROGRAM, processes=2, min_customers=100, chunk=8)
    pool.warm_up(99)  # a round below the threshold spawns nothing
    await collect(pool, population(20))
    assert pool._executor is None


async def test_a_warmed_up_pool_has_its_processes_up() -> None:
    pool = RoundPool(PROGRAM, processes=2, min_customers=1)
    pool.warm_up(1)
    try:
        assert pool._executor is not None and len(pool._executor._processes) == 2
        assert all(alive(pid) for pid in pool._executor._processes)
        executor = pool._executor
        pool.warm_up(1)  # once
        assert pool._executor is executor
    finally:
        pool.close()


async def test_a_pool_that_cannot_start_leaves_rounds_to_the_worker(monkeypatch) -> None:
    def no_processes(*args: object, **kwargs: object) -> None:
        raise OSError("no /dev/shm")

    monkeypatch.setattr(rounds.ProcessPoolExecutor, "__init__", no_processes)
    pool = RoundPool(PROGRAM, processes=2, min_customers=1, chunk=8)
    pool.warm_up(1)
    assert pool.processes == 0
    states = population(10)
    assert await collect(pool, states) == [apply_round(states[:8], ROUND_1, PROGRAM),
                                           apply_round(states[8:], ROUND_1, PROGRAM)]


async def test_a_killed_pool_process_costs_nothing() -> None:
    states = population(60)
    expected = await collect(RoundPool(PROGRAM, processes=0, min_customers=1, chunk=4), states)
    pool = RoundPool(PROGRAM, processes=1, min_customers=1, chunk=4)
    chunks = pool.chunks(states, ROUND_1)
    got = [await anext(chunks)]
    assert pool._executor is not None
    for pid in list(pool._executor._processes):
        os.kill(pid, signal.SIGKILL)
    got += [chunk async for chunk in chunks]
    assert got == expected
    assert pool._executor is None  # the next round starts a new pool
    again = await collect(pool, states)
    pool.close()
    assert again == expected


async def test_a_pool_process_that_died_between_rounds_costs_nothing() -> None:
    states = population(30)
    expected = await collect(RoundPool(PROGRAM, processes=0, min_customers=1, chunk=4), states)
    pool = RoundPool(PROGRAM, processes=2, min_customers=1, chunk=4)
    pool.warm_up(1)
    assert pool._executor is not None
    victims = list(pool._executor._processes)
    os.kill(victims[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(victims[0]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    while not pool._executor._broken and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the executor notices and marks itself broken
    assert await collect(pool, states) == expected
    assert pool._executor is None
    pool.close()


@pytest.mark.parametrize("processes", [0, 1])
async def test_a_round_stopped_half_way_leaves_no_work_queued(processes: int) -> None:
    pool = RoundPool(PROGRAM, processes=processes, min_customers=1, chunk=2)
    chunks = pool.chunks(population(20), ROUND_1)
    await anext(chunks)
    await chunks.aclose()
    pool.close()
    assert pool._executor is None


KILLED_WORKER = """
import asyncio, os, signal
from streams.rounds import RoundPool
from tests.unit.test_rounds import PROGRAM, ROUND_1, population

async def main():
    pool = RoundPool(PROGRAM, processes=2, min_customers=1, chunk=4)
    await anext(pool.chunks(population(40), ROUND_1))
    print(*pool._executor._processes, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_pool_processes_exit_with_a_killed_worker(tmp_path: Path) -> None:
    script = tmp_path / "killed_worker.py"
    script.write_text(KILLED_WORKER)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert run.returncode == -signal.SIGKILL, run.stderr
    children = [int(pid) for pid in run.stdout.split()]
    assert len(children) == 2
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize(("cpu_max", "limit"), [
    ("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000\n", 2),
    ("50000 100000\n", 1), (None, None)])
def test_pool_size_follows_a_container_cpu_limit(tmp_path: Path, cpu_max: str | None,
                                                 limit: int | None) -> None:
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    cpus = len(os.sched_getaffinity(0))
    assert available_cpus(path) == (cpus if limit is None else min(cpus, limit))
