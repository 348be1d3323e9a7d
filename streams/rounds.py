"""A guidance round (or the reward notice) over the customers of one partition.

A round is CPU only: per customer, read the stored state, apply the rule, encode the
task and the new state (about 20 µs, streams/guidance_round.py). One Python process
runs on one core, so a large round is cut into chunks that pool processes compute
while the event loop sends the chunks already done, in order. A small round is
computed in the worker itself: the trip through the pool would cost more than it saves.
"""

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import pickle
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rules.program import Program
from rules.rewards import on_reward_notice
from schemas.state import CustomerState
from streams.encoded import Counts, Encoded, encode_effects
from streams.guidance_round import guidance_for

CHUNK = 1000  # customers per pool call: ~1 MB of states each way
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")

log = logging.getLogger("waiver")


@dataclass(frozen=True)
class Round:
    """What a round trigger asks of each customer of its partition."""

    kind: str  # "guidance_round" or "reward_notice"
    round: int | None
    at: datetime
    now: datetime


def apply_round(states: Sequence[bytes], job: Round, program: Program
                ) -> tuple[list[Encoded], Counts]:
    """The round for these stored states: the customers it changes or writes for."""
    counts: Counts = Counter()
    out: list[Encoded] = []
    if job.kind == "guidance_round":
        assert job.round is not None
        for stored in states:
            encoded = guidance_for(stored, job.round, job.at, program, job.now, counts)
            if encoded is not None and (encoded[1] or encoded[2] is not None):
                out.append(encoded)
        return out, counts
    for stored in states:
        state = CustomerState.model_validate_json(stored)
        effects = on_reward_notice(state, job.at, program, job.now)
        encoded = encode_effects(effects, counts)
        if encoded[1] or encoded[2] is not None:
            out.append(encoded)
    return out, counts


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota
    (a container's `cpus` limit, which os.cpu_count() does not see)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    return count


_program: Program | None = None  # in a pool process


def _start_in_pool(program: Program) -> None:
    global _program
    _program = program
    # A pool process blocks on its queue, which it holds both ends of: when the worker
    # is killed it would wait for ever. It exits with the worker instead.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(1)


def _apply_in_pool(states: Sequence[bytes], job: Round) -> bytes:
    assert _program is not None
    # Pickled here, unpickled by the event loop (in `chunks`): the pool's own result
    # thread would otherwise create the states, and glibc gives each thread a malloc
    # arena of its own. States kept from there and garbage freed around them grew the
    # worker by about 1 KB per customer of the round.
    return pickle.dumps(apply_round(states, job, _program), protocol=pickle.HIGHEST_PROTOCOL)


class RoundPool:
    """Rounds of `min_customers` or more computed by `processes` pool processes (see
    `warm_up`). With 0 processes every round runs in the worker."""

    def __init__(self, program: Program, processes: int, min_customers: int,
                 chunk: int = CHUNK) -> None:
        self.program = program
        self.processes = processes
        self.min_customers = min_customers
        self.chunk = chunk
        self._executor: ProcessPoolExecutor | None = None

    async def chunks(self, states: Sequence[bytes], job: Round
                     ) -> AsyncIterator[tuple[list[Encoded], Counts]]:
        """The round over `states`, chunk by chunk, in their order."""
        pieces = [states[i:i + self.chunk] for i in range(0, len(states), self.chunk)]
        if self.processes <= 0 or len(states) < self.min_customers:
            for piece in pieces:
                yield apply_round(piece, job, self.program)
            return
        loop = asyncio.get_running_loop()
        executor = self._started()
        todo = deque(pieces)
        # Two chunks per process in flight: each process has the next one queued while
        # the event loop sends the last one's records.
        window: deque[tuple[Sequence[bytes], asyncio.Future]] = deque()
        try:
            while todo or window:
                try:
                    while todo and len(window) < 2 * self.processes:
                        # Taken off `todo` once submitted: a broken pool refuses the
                        # submit, and the piece must still be in `todo` then.
                        window.append((todo[0], loop.run_in_executor(
                            executor, _apply_in_pool, todo[0], job)))
                        todo.popleft()
                    result = pickle.loads(await window[0][1])
                except BrokenProcessPool as exc:
                    # A pool process died (killed, out of memory), in this round or
                    # since the last one: finish here; the next round starts a new pool.
                    log.warning("round pool broken (%s): the rest of this round runs in "
                                "the worker", exc)
                    self.close()
                    for piece in [*(piece for piece, _ in window), *todo]:
                        yield apply_round(piece, job, self.program)
                    return
                window.popleft()
                yield result
        finally:
            for _, future in window:
                future.cancel()

    def warm_up(self, customers: int) -> None:
        """Start the processes now, without waiting for them: a round of about
        `customers` per partition is coming. Each spawn costs about 0.7 s of CPU
        (imports), which a worker's start-up, often a backlog to catch up, is better
        without, and so is a round that stays in the worker; started when the round's
        triggers arrive, the processes are up by the time its first chunk is ready."""
        if self.processes <= 0 or self._executor is not None or \
                customers < self.min_customers:
            return
        try:
            executor = self._started()
            for _ in range(self.processes):
                executor.submit(os.getpid)
        except Exception as exc:  # OSError (no /dev/shm, ...), BrokenProcessPool
            log.warning("round pool did not start (%s: %s): rounds run in the worker",
                        type(exc).__name__, exc)
            self.close()
            self.processes = 0

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn, not fork: the worker has threads (aiokafka's consumer), and a fork
            # copies their locks in whatever state they are.
            self._executor = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_in_pool, initargs=(self.program,))
            log.info("round pool: %d processes", self.processes)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
