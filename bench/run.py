"""Benchmark the pipeline against raw aiokafka, on one broker, in one run.

    python bench/run.py --n 20000 --out bench/results/20k [--broker tansu|kafka] [--profile]

Phases, all on the same broker and topics:
  idle      a worker on empty topics: its resident memory (the base for bytes/customer)
  ingest    N cancellations published first, then a worker started: decisions/s from the
            first decision to the N-th; baseline: raw aiokafka consume + produce
  fan-out   one guidance-round deadline: seconds until N SMS/e-mail tasks are out and all
            partitions reported progress; baseline: raw aiokafka producing N records
  I/O floor each baseline again, also writing a state record per customer as the worker
            does to its changelog: what the design's writes alone cost
  memory    the worker's VmHWM after the fan-out; bytes per customer in the table
  recovery  seconds until ready: a worker on the memory store after a SIGKILL (it reads
            every changelog), the killed worker on its RocksDB store, then the same
            worker after a clean stop (SIGTERM)
  latency   on that worker, cancellations at a steady rate: publish -> decision, per event
Writes OUT/results.json, OUT/results.md and the logs; with --profile, the worker runs
under pyinstrument for ingest and fan-out and OUT/profile-*.{html,txt} are written.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from bench.counter import RecordCounter  # noqa: E402
from brokers.tansu import embedded_broker, free_port  # noqa: E402
from rules.customer import on_cancellation  # noqa: E402
from schemas.events import Cancellation  # noqa: E402
from streams.admin import ensure_topics  # noqa: E402
from streams.codec import parse  # noqa: E402
from streams.encoded import encode_state  # noqa: E402
from streams.rounds import Round, apply_round  # noqa: E402
from streams.runner import WorkerProcess  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import TopicNames  # noqa: E402
from tests.factories import cancellation_dict  # noqa: E402

PARTITIONS = 8
PREFIX = "bench."
ROUND_AT = "2026-01-21T10:00:00+09:00"
PROFILE_TOGGLE = signal.SIGRTMIN + 3  # type: ignore[attr-defined]  # see profiled_worker.py
BENCH = Path(__file__).resolve().parent


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---------------------------------------------------------------- the machine, /proc

def machine_info() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    return {"cpu_count": os.cpu_count(), "cpu_model": model, "memory_bytes": mem,
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg()}


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS, ... of a process, in bytes."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("Vm") and line.rstrip().endswith("kB"):
                name, rest = line.split(":", 1)
                values[name] = int(rest.split()[0]) * 1024
    return values


TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of_stat(path: str) -> float:
    with open(path, encoding="utf-8") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def cpu_times(pid: int | None, threads: bool = True) -> dict[str, float]:
    """CPU seconds of a process: in all, of its main thread (the event loop), and of its
    live child processes (a worker's round pool); for a JVM broker (threads=False), of
    its JIT compiler threads."""
    if pid is None:
        return {}
    try:
        times = {"total": _cpu_of_stat(f"/proc/{pid}/stat")}
        if threads:
            times["main_thread"] = _cpu_of_stat(f"/proc/{pid}/task/{pid}/stat")
            times["pool_processes"] = 0.0
            for child in child_pids(pid):
                with contextlib.suppress(OSError):
                    times["pool_processes"] += _cpu_of_stat(f"/proc/{child}/stat")
        else:
            for task in jit_threads(pid):  # per thread: the JVM starts and stops them
                with contextlib.suppress(OSError):
                    times[f"jit:{task}"] = _cpu_of_stat(f"/proc/{pid}/task/{task}/stat")
    except OSError:
        return {}
    return times


def jit_threads(pid: int) -> list[str]:
    """The JVM's compiler threads ("C1 CompilerThre", "C2 CompilerThre", ...)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            if "CompilerThre" in Path(f"/proc/{pid}/task/{task}/comm").read_text():
                found.append(task)
    return found


def child_pids(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {k: round(after[k] - before[k], 2) for k in before
             if k in after and not k.startswith("jit:")}
    jit = [v - before.get(k, 0.0) for k, v in after.items() if k.startswith("jit:")]
    if jit:  # a compiler thread that ended in between is left out: a lower bound
        delta["jit"] = round(sum(jit), 2)
    return delta


def tansu_pid(port: str) -> int | None:
    """The embedded broker is our child: find it by its listener port."""
    for child in child_pids(os.getpid()):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"broker" in cmd and f":{port}".encode() in cmd:
            return child
    return None


# ---------------------------------------------------------------- workers

class BenchWorker(WorkerProcess):
    """WorkerProcess, optionally under pyinstrument (bench/profiled_worker.py)."""

    def __init__(self, settings: Settings, log_file: Path, profile_dir: Path | None = None
                 ) -> None:
        super().__init__(settings, log_file)
        self.profile_dir = profile_dir

    def start(self, timeout: float = 90.0) -> "BenchWorker":
        if self.profile_dir is None:
            super().start(timeout)
            return self
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        env = self.environment()
        env["BENCH_PROFILE_DIR"] = str(self.profile_dir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                          env.get("PYTHONPATH")]))
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, str(BENCH / "profiled_worker.py")],
                                         env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.wait_ready(timeout)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    async def profile(self, phase: str, start: bool) -> None:
        """Start or stop the profiler of phase `phase`; waits until it is done."""
        if self.profile_dir is None or self.pid is None:
            return
        if start:
            (self.profile_dir / ".phase").write_text(phase)
        marker = self.profile_dir / (f".started-{phase}" if start else f".done-{phase}")
        os.kill(self.pid, PROFILE_TOGGLE)
        deadline = time.monotonic() + 300
        while not marker.exists():
            if time.monotonic() > deadline or not self.running:
                raise RuntimeError(f"the profiler did not {'start' if start else 'stop'} "
                                   f"for {phase}")
            await asyncio.sleep(0.1)


def worker_settings(bootstrap: str, prefix: str, data_dir: Path, guarantee: str,
                    tansu: bool) -> Settings:
    # One static group member id for the worker and its replacement (recovery phase), as
    # a deployment gives each worker slot a stable id. tansu answers a waiting fetch only
    # when its wait expires, so the worker's fetch wait is short there (Apache Kafka
    # answers as soon as data arrives: the default suits it).
    # Other WAIVER_* variables in the environment apply to the worker, as in a deployment.
    return Settings.from_env(
        broker=f"kafka://{bootstrap}", topic_prefix=prefix, partitions=PARTITIONS,
        session_timeout=6.0, web_port=free_port(), data_dir=str(data_dir),
        processing_guarantee=guarantee, instance_id=f"{prefix}worker-1",
        fetch_max_wait_ms=10 if tansu else None)  # logging: the defaults (info, JSON)


# ---------------------------------------------------------------- data

def cancellation(tag: str, i: int) -> tuple[bytes, bytes]:
    """An eligible cancellation; a third phone only, a third e-mail only, a third both."""
    kind = i % 3
    contact = {"name": "김민수",
               "phone": None if kind == 1 else f"010-{2000 + (i // 10000) % 8000}-{i % 10000:04d}",
               "email": None if kind == 0 else f"user{i}@example.com",
               "preferred_channel": ["sms", "email", None][kind]}
    cid = f"{tag}{i:07d}"
    event = cancellation_dict(cid, event_id=f"{tag.lower()}-c{i}", contact=contact)
    return cid.encode(), json.dumps(event, ensure_ascii=False).encode()


def state_sizes(settings: Settings, n: int, samples: int = 500) -> tuple[float, float]:
    """The average bytes of a customer's stored state after the ingest and after the
    round, as the worker writes them to its table's changelog: the pipeline's own rules
    on a sample of the bench's customers (for the I/O floors). The round's states come
    from `apply_round`, what the worker's round pool runs."""
    program = settings.program()
    now = datetime.now(UTC)
    stored = [encode_state(on_cancellation(None, parse(Cancellation, cancellation("B", i)[1]),
                                           0, program, now).state)
              for i in range(0, n, max(1, n // samples))]
    job = Round("guidance_round", 1, datetime.fromisoformat(ROUND_AT), now=now)
    after_round = [state for _, _, state in apply_round(stored, job, program)[0] if state]
    return (sum(map(len, stored)) / len(stored),
            sum(map(len, after_round)) / max(1, len(after_round)))


def io_floor(run: dict[str, Any], baseline_seconds: float, seconds: float,
             state_bytes: float | None = None) -> dict[str, Any]:
    """A floor run against the baseline and the pipeline's own time."""
    floor = run["last"] - run["t0"]
    return {"seconds": round(floor, 3), "runs_seconds": run["runs_seconds"],
            **({} if state_bytes is None else {"state_avg_bytes": round(state_bytes, 1)}),
            # The ratio a worker would reach that did nothing but this I/O.
            "ratio_ceiling": round(baseline_seconds / floor, 4),
            # The pipeline's throughput against the floor's.
            "share": round(floor / seconds, 4)}


async def publish_round(bootstrap: str, topic: str, event_id: str) -> None:
    """The deadline event of guidance round 1 at ROUND_AT."""
    deadline = {"event_id": event_id, "kind": "guidance_round", "round": 1, "at": ROUND_AT}
    await publish(bootstrap, topic, iter([(event_id.encode(), json.dumps(deadline).encode())]))


def backlog(tag: str, n: int) -> Iterator[tuple[bytes, bytes]]:
    for i in range(n):
        yield cancellation(tag, i)


async def publish(bootstrap: str, topic: str, records: Iterator[tuple[bytes, bytes]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=256 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    count = 0
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            count += 1
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        for _ in range(100):
            described = await admin.describe_topics([topic])
            if described and len(described[0].get("partitions") or []) == PARTITIONS:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"topic {topic} not ready")
    finally:
        await admin.close()


async def run_baseline(mode: str, bootstrap: str, counter: RecordCounter, dest: str, n: int,
                       size: int, timeout: float, stall: float, source: str | None = None,
                       state_size: float = 0) -> dict[str, float]:
    """Run bench/baseline.py in its own process (bench/faust_relay.py for mode "faust");
    its t0, and the first and last output the counter sees. With `state_size`, the I/O
    floor: a state record per record too."""
    script = ["faust_relay.py"] if mode == "faust" else ["baseline.py", mode]
    args = [sys.executable, str(BENCH / script[0]), *script[1:], "--bootstrap", bootstrap,
            "--dest", dest, "--n", str(n), "--size", str(max(16, int(size))),
            "--timeout", str(timeout)]
    if state_size:
        args += ["--state-size", str(int(state_size))]
        n *= 2
    if source:
        args += ["--source", source]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"baseline {mode} exited before starting")
        t0 = json.loads(line)["t0"]
        await counter.wait_for(lambda: counter.count(dest) >= n, timeout=timeout, stall=stall,
                               what=f"baseline {mode}",
                               # Exit 0 is the baseline done: the counter may still lag.
                               alive=lambda: proc.returncode in (None, 0))
        await asyncio.wait_for(proc.wait(), 60)
        last = counter.last_arrival(dest)
        first = counter.first_arrival(dest)
        assert last is not None and first is not None
        return {"t0": t0, "first": first, "last": last}
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ---------------------------------------------------------------- the phases

RECOVERY_MARKS = {  # Faust's own log messages, first occurrence of each
    "joining_group": "Revoking previously assigned partitions",
    "assigned": "Elected group leader",
    "changelog_read_start": "Restoring state from changelog topics",
    "changelog_read_done": "Done reading from changelog topics",
    "ready": "Worker ready",
}


def ready_at(worker: WorkerProcess) -> float | None:
    """When the worker logged "[^Worker]: Ready", as time.monotonic() of this process
    (the ready line that WorkerProcess.start polls for is seen up to 0.2 s later)."""
    for line in worker.log_text().splitlines():
        if line.startswith("{") and "[^Worker]: Ready" in line:
            with contextlib.suppress(ValueError, KeyError):
                wall = datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
                return wall - (time.time() - time.monotonic())
    return None


def recovery_phases(log_text: str, launched_wall: float) -> dict[str, float]:
    """Seconds from launch to each step of the worker's start, from its JSON log."""
    found: dict[str, float] = {}
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
            ts = datetime.fromisoformat(record["ts"]).timestamp()
        except (ValueError, KeyError):
            continue
        for name, text in RECOVERY_MARKS.items():
            if name not in found and text in record.get("message", ""):
                found[name] = round(ts - launched_wall, 2)
    return found


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), round(q / 100 * len(values) + 0.5)))
    return values[rank - 1]


async def bench(args: argparse.Namespace, bootstrap: str, broker_pid: int | None,
                tmp: Path, out: Path, workers: list[BenchWorker], results: dict[str, Any]
                ) -> None:
    """Run the phases, filling `results` as they finish (kept when a later one fails)."""
    counters: list[RecordCounter] = []
    main_task = asyncio.current_task()
    assert main_task is not None
    # SIGTERM/SIGINT: cancel the run, so that the partial results are still written
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main_task.cancel)
    try:
        await phases(args, bootstrap, broker_pid, tmp, out, workers, results, counters)
    finally:
        for c in counters:
            await c.stop()


async def phases(args: argparse.Namespace, bootstrap: str, broker_pid: int | None,
                 tmp: Path, out: Path, workers: list[BenchWorker], results: dict[str, Any],
                 counters: list[RecordCounter]) -> None:
    async def counter(topics: list[str], **options: Any) -> RecordCounter:
        c = RecordCounter(bootstrap, topics, isolation_level=isolation, **options)
        counters.append(c)
        return await c.start()

    async def baseline(mode: str, size: float, source: str | None = None,
                       prefix: str = PREFIX, count: int | None = None, runs: int = 1,
                       state_size: float = 0) -> dict[str, Any]:
        """The raw-aiokafka baseline of `mode`, `runs` times, each onto a topic of its
        own: the median run, with the seconds of all (`runs_seconds`). At 20,000 records
        a run takes about a second, and single runs varied from 26,000 to 42,000/s."""
        done = []
        for run in range(runs):
            topic = f"{prefix}baseline.{mode}{'-floor' if state_size else ''}-out" + (
                f"-{run}" if run else "")
            await create_topic(bootstrap, topic)
            base_counter = await counter([topic])
            try:
                done.append(await run_baseline(mode, bootstrap, base_counter, topic,
                                               n if count is None else count, size, timeout,
                                               stall, source=source,
                                               state_size=state_size))
            finally:
                await base_counter.stop()
        median = sorted(done, key=lambda b: b["last"] - b["t0"])[len(done) // 2]
        return {**median, "runs_seconds": [round(b["last"] - b["t0"], 3) for b in done]}

    n = args.n
    guarantee = args.guarantee or ("exactly_once" if args.broker == "kafka"
                                   else "at_least_once")
    tansu = args.broker == "tansu"
    if tansu and guarantee == "exactly_once":
        raise SystemExit("tansu has no transactions: exactly_once needs --broker kafka")
    isolation = "read_committed" if guarantee == "exactly_once" else "read_uncommitted"
    timeout = args.phase_timeout or (60 + n / 150)
    stall = 60.0
    names = TopicNames(PREFIX)
    results.update({"broker": args.broker, "n": n, "processing_guarantee": guarantee,
                    "worker_environment": {  # WAIVER_* set for this run, secrets left out
                        k: v for k, v in os.environ.items() if k.startswith("WAIVER_")
                        and not any(s in k for s in ("TOKEN", "PASSWORD"))},
                    "partitions": PARTITIONS, "profile": bool(args.profile),
                    "started_at": datetime.now(UTC).isoformat(timespec="seconds")})

    # -- idle: a worker with an empty table, on topics of its own
    step("idle worker (empty table) for the memory baseline")
    idle = BenchWorker(worker_settings(bootstrap, "idle.", tmp / "idle", guarantee, tansu),
                       out / "worker-idle.log")
    workers.append(idle)
    await asyncio.to_thread(idle.start, 120.0)
    await asyncio.sleep(3)
    assert idle.pid is not None
    idle_rss = proc_status(idle.pid)["VmRSS"]
    await asyncio.to_thread(idle.stop)
    step(f"idle worker RSS {idle_rss / 2**20:.1f} MiB")

    # -- warm-up: the same work on topics of its own, unmeasured (see warm_up)
    warm = args.warmup if args.warmup is not None else 0 if tansu else min(n, 20000)
    if warm:
        cpu0 = cpu_times(broker_pid, threads=False)
        t = time.monotonic()
        seen = await warm_up(args, bootstrap, warm, tmp, out, workers, counter, baseline,
                             guarantee, isolation, tansu, timeout, stall)
        results["warmup"] = {"customers": warm, "seconds": round(time.monotonic() - t, 1),
                             **seen,
                             "broker_cpu_seconds": cpu_delta(
                                 cpu0, cpu_times(broker_pid, threads=False))}
        step(f"warm-up done in {results['warmup']['seconds']} s, broker CPU "
             f"{cpu_text(results['warmup']['broker_cpu_seconds'])}")

    # -- ingest
    settings = worker_settings(bootstrap, PREFIX, tmp / "worker", guarantee, tansu)
    await ensure_topics(settings)
    step(f"publishing {n} cancellations")
    t = time.monotonic()
    await publish(bootstrap, names.cancellations, backlog("B", n))
    publish_seconds = time.monotonic() - t
    step(f"published in {publish_seconds:.1f}s ({n / publish_seconds:.0f}/s)")
    outputs = await counter([names.decisions, names.dead_letter])
    profile_dir = out if args.profile else None
    worker = BenchWorker(settings, out / "worker.log", profile_dir)
    workers.append(worker)
    t_launch = time.monotonic()
    await asyncio.to_thread(worker.start, 120.0)
    t_ready = ready_at(worker) or time.monotonic()
    await worker.profile("ingest", start=True)
    cpu0, bcpu0 = cpu_times(worker.pid), cpu_times(broker_pid, threads=False)
    step(f"worker ready after {t_ready - t_launch:.1f}s; waiting for {n} decisions")
    try:
        await outputs.wait_for(lambda: outputs.count(names.decisions) >= n, timeout=timeout,
                               stall=stall, what="ingest", alive=lambda: worker.running)
    except (TimeoutError, RuntimeError, asyncio.CancelledError):
        done = outputs.count(names.decisions)
        span = (outputs.last_arrival(names.decisions) or 0) - (
            outputs.first_arrival(names.decisions) or 0)
        results["ingest"] = {"partial": True, "decisions": done, "seconds": round(span, 1),
                             "events_per_second": round(done / span, 1) if span else None}
        raise
    cpu1, bcpu1 = cpu_times(worker.pid), cpu_times(broker_pid, threads=False)
    await worker.profile("ingest", start=False)
    first, last = outputs.first_arrival(names.decisions), outputs.last_arrival(names.decisions)
    assert first is not None and last is not None
    decision_size = outputs.average_size(names.decisions)
    dead_letters = outputs.count(names.dead_letter)
    await outputs.stop()
    ours_eps = n / max(last - t_ready, 1e-6)
    step(f"ingest: {n} decisions {last - t_ready:.2f}s after ready = {ours_eps:.0f}/s "
         f"({dead_letters} dead letters)")

    step("ingest baseline: raw aiokafka consume + produce")
    b = await baseline("ingest", decision_size, source=names.cancellations,
                       runs=args.baseline_runs)
    base_eps = n / max(b["last"] - b["t0"], 1e-6)
    step(f"ingest baseline: {base_eps:.0f}/s (median of runs of {b['runs_seconds']} s)")
    ingest_state, round_state = state_sizes(settings, n)
    step(f"ingest I/O floor: the baseline with a {ingest_state:.0f}-byte state per event")
    floor = await baseline("ingest", decision_size, source=names.cancellations,
                           runs=args.baseline_runs, state_size=ingest_state)
    step("ingest Faust floor: a Faust agent doing the baseline's job (bench/faust_relay.py)")
    faust_run = await baseline("faust", decision_size, source=names.cancellations,
                               runs=args.baseline_runs)
    results["ingest"] = {
        "ratio": round(ours_eps / base_eps, 4),
        "events_per_second": round(ours_eps, 1),
        "baseline_events_per_second": round(base_eps, 1),
        "seconds": round(last - t_ready, 3),
        "baseline_seconds": round(b["last"] - b["t0"], 3),
        "baseline_runs_seconds": b["runs_seconds"],
        "io_floor": io_floor(floor, b["last"] - b["t0"], last - t_ready, ingest_state),
        "faust_floor": io_floor(faust_run, b["last"] - b["t0"], last - t_ready),
        "seconds_first_to_last_decision": round(last - first, 3),
        "worker_start_seconds": round(t_ready - t_launch, 3),
        "publish_seconds": round(publish_seconds, 3),
        "decision_avg_bytes": round(decision_size, 1),
        "dead_letters": dead_letters,
        "worker_cpu_seconds": cpu_delta(cpu0, cpu1),
        "broker_cpu_seconds": cpu_delta(bcpu0, bcpu1),
    }

    # -- fan-out
    tasks = [names.sms, names.email]
    fan = await counter([*tasks, names.round_progress])
    await worker.profile("fanout", start=True)
    cpu0, bcpu0 = cpu_times(worker.pid), cpu_times(broker_pid, threads=False)
    step("fan-out: guidance round 1")
    t0 = time.monotonic()
    await publish_round(bootstrap, names.deadlines, "bench-round-1")
    await fan.wait_for(lambda: fan.count(*tasks) >= n
                       and fan.count(names.round_progress) >= PARTITIONS,
                       timeout=timeout, stall=stall, what="fan-out",
                       alive=lambda: worker.running)
    cpu1, bcpu1 = cpu_times(worker.pid), cpu_times(broker_pid, threads=False)
    await worker.profile("fanout", start=False)
    t_tasks = fan.last_arrival(*tasks)
    t_progress = fan.last_arrival(names.round_progress)
    assert t_tasks is not None and t_progress is not None
    task_size = fan.average_size(*tasks)
    sms, email = fan.count(names.sms), fan.count(names.email)
    await fan.stop()
    fan_seconds = t_tasks - t0
    step(f"fan-out: {sms} SMS + {email} e-mail tasks in {fan_seconds:.2f}s")

    # -- memory, before anything else runs in the worker
    assert worker.pid is not None
    status = proc_status(worker.pid)
    peak = status["VmHWM"]
    results["memory"] = {
        "peak_rss_bytes": peak,
        "bytes_per_customer": round((peak - idle_rss) / n, 1),
        "idle_rss_bytes": idle_rss,
        "rss_after_fanout_bytes": status["VmRSS"],
        "bytes_per_customer_from_rss_after_fanout": round((status["VmRSS"] - idle_rss) / n, 1),
        # The round pool's processes (streams/rounds.py), each: what a round adds.
        "pool_peak_rss_bytes": [proc_status(child)["VmHWM"] for child in child_pids(worker.pid)],
    }

    step("fan-out baseline: raw aiokafka producing N pre-rendered records")
    b = await baseline("fanout", task_size, runs=args.baseline_runs)
    base_seconds = b["last"] - b["t0"]
    step(f"fan-out baseline: {base_seconds:.2f}s (median of {b['runs_seconds']})")
    step(f"fan-out I/O floor: the baseline with a {round_state:.0f}-byte state per task")
    floor = await baseline("fanout", task_size, runs=args.baseline_runs, state_size=round_state)
    results["fanout"] = {
        # Throughput, pipeline / baseline, like ingest's: 0.5 = half the raw speed.
        "ratio": round(base_seconds / fan_seconds, 4),
        "seconds": round(fan_seconds, 3),
        "baseline_seconds": round(base_seconds, 3),
        "baseline_runs_seconds": b["runs_seconds"],
        "io_floor": io_floor(floor, base_seconds, fan_seconds, round_state),
        "seconds_until_all_partitions_reported": round(t_progress - t0, 3),
        "tasks": sms + email, "sms": sms, "email": email,
        "tasks_per_second": round((sms + email) / fan_seconds, 1),
        "baseline_tasks_per_second": round(n / base_seconds, 1),
        "task_avg_bytes": round(task_size, 1),
        "worker_cpu_seconds": cpu_delta(cpu0, cpu1),
        "broker_cpu_seconds": cpu_delta(bcpu0, bcpu1),
    }

    # -- recovery: seconds until a worker is ready again, three ways
    async def timed_start(w: BenchWorker) -> dict[str, Any]:
        t, t_wall = time.monotonic(), time.time()
        await asyncio.to_thread(w.start, max(120.0, timeout))
        return {"seconds": round(time.monotonic() - t, 3),
                "seconds_from_launch_to": recovery_phases(w.log_text(), t_wall)}

    step("recovery: SIGKILL the worker, start one on the memory store (reads every changelog)")
    worker.kill()
    # Same instance id and URL, as a restarted pod: Kafka hands a returning static member
    # its old assignment, URL included, and Faust refuses a URL that has changed.
    in_memory = BenchWorker(replace(settings, store="memory",
                                    data_dir=str(tmp / "worker-memory")),
                            out / "worker-memory.log")
    workers.append(in_memory)
    memory_store = await timed_start(in_memory)
    await asyncio.to_thread(in_memory.stop)
    step("recovery: the killed worker again, on its RocksDB store")
    after_kill = await timed_start(worker)
    await asyncio.to_thread(worker.stop)  # SIGTERM: a clean stop
    step("recovery: the same worker after a clean stop")
    clean = await timed_start(worker)
    results["recovery"] = {"seconds": clean["seconds"], "customers": n,
                           "store": settings.store, "clean_restart": clean,
                           "after_kill": after_kill, "memory_store": memory_store,
                           "changelog_records": "N decisions + N rounds sent",
                           "session_timeout_seconds": settings.session_timeout}
    step(f"recovery: ready after {clean['seconds']:.1f}s (clean), "
         f"{after_kill['seconds']:.1f}s (after SIGKILL), "
         f"{memory_store['seconds']:.1f}s (memory store)")

    # -- latency, on the restarted worker; then raw aiokafka relaying the same events
    cpu0, bcpu0 = cpu_times(worker.pid), cpu_times(broker_pid, threads=False)
    results["latency"] = await latency(args, bootstrap, names.cancellations, names.decisions,
                                       "L", isolation, lambda: worker.running, stall)
    cpu1, bcpu1 = cpu_times(worker.pid), cpu_times(broker_pid, threads=False)
    results["latency"]["worker_cpu_seconds"] = cpu_delta(cpu0, cpu1)
    results["latency"]["broker_cpu_seconds"] = cpu_delta(bcpu0, bcpu1)
    await asyncio.to_thread(worker.stop)
    bcpu0 = cpu_times(broker_pid, threads=False)
    results["latency"]["baseline"] = await relay_latency(
        args, bootstrap, results["ingest"]["decision_avg_bytes"], worker.settings, stall)
    results["latency"]["baseline"]["broker_cpu_seconds"] = cpu_delta(
        bcpu0, cpu_times(broker_pid, threads=False))


async def warm_up(args: argparse.Namespace, bootstrap: str, n: int, tmp: Path, out: Path,
                  workers: list[BenchWorker], counter: Callable[..., Awaitable[RecordCounter]],
                  baseline: Callable[..., Awaitable[dict[str, float]]], guarantee: str,
                  isolation: str, tansu: bool, timeout: float, stall: float
                  ) -> dict[str, float]:
    """The ingest, the fan-out and the steady traffic of the latency phase for `n`
    customers, pipeline and baselines, on topics of their own, before anything is
    measured. A fresh JVM broker compiles its hot paths while the first phase of each
    kind of traffic runs: in a cold run its JIT compiler threads took 2.8 s of CPU during
    a 6 s pipeline ingest on two cores, against 0.26 s during the baseline that followed,
    and 7.6 s during a 20 s pipeline latency phase (after a warm-up of ingest and
    fan-out only) against 1.3 s during the raw relay after it. A deployed broker has long
    been warm."""
    step(f"warm-up: {n} customers on topics of their own (not measured)")
    prefix = "warmup."
    names = TopicNames(prefix)
    settings = worker_settings(bootstrap, prefix, tmp / "warmup", guarantee, tansu)
    await ensure_topics(settings)
    await publish(bootstrap, names.cancellations, backlog("W", n))
    worker = BenchWorker(settings, out / "worker-warmup.log")
    workers.append(worker)
    outputs = await counter([names.decisions, names.sms, names.email])
    steady = argparse.Namespace(**{**vars(args), "latency_seconds": args.warmup_latency_seconds})
    seen: dict[str, dict[str, Any]] = {}  # the latencies seen while warming up
    try:
        await asyncio.to_thread(worker.start, 120.0)
        await outputs.wait_for(lambda: outputs.count(names.decisions) >= n, timeout=timeout,
                               stall=stall, what="warm-up ingest", alive=lambda: worker.running)
        await publish_round(bootstrap, names.deadlines, "warmup-round-1")
        await outputs.wait_for(lambda: outputs.count(names.sms, names.email) >= n,
                               timeout=timeout, stall=stall, what="warm-up fan-out",
                               alive=lambda: worker.running)
        decision_size = outputs.average_size(names.decisions)
        task_size = outputs.average_size(names.sms, names.email)
        if steady.latency_seconds:
            seen["pipeline"] = await latency(steady, bootstrap, names.cancellations,
                                             names.decisions, "WL", isolation,
                                             lambda: worker.running, stall)
    finally:
        await outputs.stop()
        await asyncio.to_thread(worker.stop)
    await baseline("ingest", decision_size, source=names.cancellations, prefix=prefix, count=n)
    await baseline("fanout", task_size, prefix=prefix, count=n)
    if steady.latency_seconds:
        seen["relay"] = await relay_latency(steady, bootstrap, decision_size, settings, stall,
                                            prefix=prefix)
    return {f"latency_{who}_{k}": r[k] for who, r in seen.items() for k in ("p50_ms", "p99_ms")}


async def relay_latency(args: argparse.Namespace, bootstrap: str, size: float,
                        settings: Settings, stall: float, prefix: str = PREFIX
                        ) -> dict[str, Any]:
    """The latency of bench/baseline.py's relay (a raw aiokafka consumer producing one
    record per event, with the worker's fetch wait), at the same rate on the same broker."""
    source, dest = f"{prefix}baseline.relay-in", f"{prefix}baseline.relay-out"
    for topic in (source, dest):
        await create_topic(bootstrap, topic)
    total = int(args.latency_rate * args.latency_seconds)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "baseline.py"), "relay", "--bootstrap", bootstrap,
        "--source", source, "--dest", dest, "--n", str(total), "--size", str(int(size)),
        "--fetch-wait-ms", str(settings.fetch_max_wait_ms),
        "--timeout", str(120 + args.latency_seconds), stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if not await asyncio.wait_for(proc.stdout.readline(), 60):  # {"t0": ...}: assigned
            raise RuntimeError("baseline relay exited before starting")
        return await latency(args, bootstrap, source, dest, "R", "read_uncommitted",
                             lambda: proc.returncode in (None, 0), stall)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def latency(args: argparse.Namespace, bootstrap: str, source: str, dest: str, tag: str,
                  isolation: str, alive: Callable[[], bool], stall: float) -> dict[str, Any]:
    """Cancellations published to `source` at a steady rate; for each, the time until its
    output (a record whose source_event_id is the cancellation's) is seen on `dest`."""
    rate, seconds = args.latency_rate, args.latency_seconds
    total = int(rate * seconds)
    sent_at = [0.0] * total
    sent_wall = [0.0] * total
    arrived = [0.0] * total
    created = [0.0] * total  # the output's record timestamp (the sender's clock, ms)
    received = 0
    prefix = f"{tag.lower()}-c"

    def on_output(topic: str, message: Any, now: float) -> None:
        nonlocal received
        event_id = json.loads(message.value).get("source_event_id", "")
        if event_id.startswith(prefix):
            i = int(event_id[len(prefix):])
            if 0 <= i < total and not arrived[i]:
                arrived[i] = now
                created[i] = message.timestamp
                received += 1

    counter = await RecordCounter(bootstrap, [dest], from_end=True,
                                  isolation_level=isolation, on_record=on_output).start()
    step(f"latency ({dest}): {rate}/s for {seconds:.0f}s ({total} cancellations)")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    publish_span, timed_out = 0.0, None
    try:
        records = [cancellation(tag, i) for i in range(total)]  # rendered ahead of time
        pending = []
        started = time.monotonic()
        i = 0
        while i < total:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            while i < due:
                key, value = records[i]
                sent_at[i] = time.monotonic()
                sent_wall[i] = time.time() * 1000
                pending.append(await producer.send(source, value, key=key))
                i += 1
            await asyncio.sleep(0.002)
        publish_span = time.monotonic() - started
        await asyncio.gather(*pending)
        await counter.wait_for(lambda: received >= total, timeout=60 + total / 100, stall=stall,
                               what="latency", alive=alive)
    except TimeoutError as exc:  # report what arrived
        timed_out = str(exc)
        step(f"latency: {exc}")
    finally:
        await producer.stop()
        await counter.stop()
    lat = sorted((a - s) * 1000 for a, s in zip(arrived, sent_at, strict=True) if a and s)
    # publish -> the output's send (its record timestamp), the rest is the broker's and
    # the reader's: under exactly-once, mostly the wait for the transaction's commit
    to_send = sorted(c - w for c, w, a in zip(created, sent_wall, arrived, strict=True) if a)
    result = {"p50_ms": round(percentile(lat, 50), 1), "p99_ms": round(percentile(lat, 99), 1),
              "max_ms": round(lat[-1], 1) if lat else None,
              "mean_ms": round(sum(lat) / len(lat), 1) if lat else None,
              "to_send_p50_ms": round(percentile(to_send, 50), 1),
              "to_send_p99_ms": round(percentile(to_send, 99), 1),
              "rate_per_second": rate, "seconds": seconds, "events": total,
              "received": len(lat),
              "outputs_per_second": round((len(lat) - 1) / max(
                  (counter.last_arrival(dest) or 0) - (counter.first_arrival(dest) or 0),
                  1e-6), 1),
              "achieved_publish_rate": round(total / publish_span, 1) if publish_span else None,
              "timed_out": timed_out}
    step(f"latency ({dest}): p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
         f"max {result['max_ms']} ms ({len(lat)}/{total} received)")
    return result


# ---------------------------------------------------------------- report

def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    i, f, lat, m, rec = r["ingest"], r["fanout"], r["latency"], r["memory"], r["recovery"]

    def floor(phase: dict[str, Any], what: str, rate: str, key: str = "io_floor",
              against: str = "its I/O floor (+ a state each)"
              ) -> list[tuple[str, str, str, str]]:
        fl = phase.get(key)
        return [(f"{what}, against {against}", f"{phase[rate]:,.0f}",
                 f"{r['n'] / fl['seconds']:,.0f}", f"{fl['share']:.3f}")] if fl else []

    return [
        ("ingest (decisions/s)", f"{i['events_per_second']:,.0f}",
         f"{i['baseline_events_per_second']:,.0f}", f"{i['ratio']:.3f}"),
        *floor(i, "ingest", "events_per_second"),
        *floor(i, "ingest", "events_per_second", "faust_floor",
               "a Faust agent doing the baseline's job"),
        ("fan-out (s for N tasks)", f"{f['seconds']:.2f}", f"{f['baseline_seconds']:.2f}",
         ""),
        ("fan-out (tasks/s)", f"{f['tasks_per_second']:,.0f}",
         f"{f['baseline_tasks_per_second']:,.0f}", f"{f['ratio']:.3f}"),
        *floor(f, "fan-out", "tasks_per_second"),
        ("latency p50 / p99 / max (ms)",
         f"{lat['p50_ms']} / {lat['p99_ms']} / {lat['max_ms']}",
         "{p50_ms} / {p99_ms} / {max_ms}".format(**lat["baseline"])
         if lat.get("baseline") else "", ""),
        ("peak RSS (MiB)", f"{m['peak_rss_bytes'] / 2**20:.1f}", "", ""),
        ("bytes per customer", f"{m['bytes_per_customer']:,.0f}", "", ""),
        ("recovery, clean restart (s to ready)", f"{rec['seconds']:.2f}", "", ""),
        ("recovery after SIGKILL (s to ready)", f"{rec['after_kill']['seconds']:.2f}", "", ""),
        ("recovery on the memory store (s to ready)", f"{rec['memory_store']['seconds']:.2f}",
         "", ""),
    ]


def text_table(r: dict[str, Any]) -> str:
    header = ("metric", "pipeline", "raw aiokafka", "ratio")
    cells = [header, *rows(r)]
    widths = [max(len(c[k]) for c in cells) for k in range(4)]
    return "\n".join("  ".join(c[k].ljust(widths[k]) for k in range(4)) for c in cells)


def cpu_text(cpu: dict[str, float]) -> str:
    if not cpu:
        return "n/a"
    main = f" (event-loop thread {cpu['main_thread']} s)" if "main_thread" in cpu else ""
    pool = f", round pool {cpu['pool_processes']} s" if cpu.get("pool_processes") else ""
    jit = f" (JIT compiler threads at least {cpu['jit']} s)" if "jit" in cpu else ""
    return f"{cpu['total']} s{main}{pool}{jit}"


def warmup_text(w: dict[str, Any]) -> str:
    steady = (f", then steady traffic as in the latency phase (pipeline p50 / p99 "
              f"{w['latency_pipeline_p50_ms']} / {w['latency_pipeline_p99_ms']} ms, raw relay "
              f"{w['latency_relay_p50_ms']} / {w['latency_relay_p99_ms']} ms)"
              if "latency_relay_p99_ms" in w else "")
    return (f"- warm-up (not measured): the same ingest and fan-out for {w['customers']} "
            f"customers on topics of their own, and the two baselines{steady}, "
            f"{w['seconds']} s; broker CPU {cpu_text(w['broker_cpu_seconds'])}.")


def floor_text(i: dict[str, Any], f: dict[str, Any]) -> str:
    fi, ff = i["io_floor"], f["io_floor"]
    return ("- I/O floors: each baseline again, writing after each record a state of the "
            "size the worker writes to its changelog (the pipeline's rules on a sample: "
            f"{fi['state_avg_bytes']:.0f} bytes after the ingest, "
            f"{ff['state_avg_bytes']:.0f} after the round; medians of runs of "
            f"{fi['runs_seconds']} and {ff['runs_seconds']} s). A worker doing nothing but "
            f"that I/O would reach a ratio of {fi['ratio_ceiling']:.3f} (ingest) and "
            f"{ff['ratio_ceiling']:.3f} (fan-out); the pipeline reaches {fi['share']:.3f} and "
            f"{ff['share']:.3f} of the floors' throughput.")


def faust_floor_text(ff: dict[str, Any]) -> str:
    return ("- Faust floor (bench/faust_relay.py): a Faust agent with the worker's Faust "
            "settings and patches, taking the events in batches as the worker does and "
            "sending one record per event like the ingest baseline, with no rules and no "
            f"state (median of runs of {ff['runs_seconds']} s). It reaches a ratio of "
            f"{ff['ratio_ceiling']:.3f}, the ceiling for an ingest through Faust's "
            f"delivery; the pipeline reaches {ff['share']:.3f} of its throughput.")


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"# Benchmark: {r['n']:,} customers, {r['broker']} ({r['processing_guarantee']})",
             "",
             f"{r['started_at']}; {m['cpu_count']} × {m['cpu_model']}, "
             f"{m['memory_bytes'] / 2**30:.1f} GiB, Python {m['python']}; load average "
             f"{m['loadavg_at_start'][0]:.2f} at start, {r['loadavg_at_end'][0]:.2f} at end.",
             ""]
    if r.get("worker_environment"):
        lines += ["Worker settings from the environment: " + ", ".join(
            f"`{k}={v}`" for k, v in sorted(r["worker_environment"].items())) + ".", ""]
    if r["profile"]:
        lines += ["**Profiled run** (pyinstrument in the worker): times are inflated; use "
                  "the profile-*.txt files, not these figures.", ""]
    lines += ["| metric | pipeline | raw aiokafka | throughput ratio (pipeline/baseline) |",
              "| --- | ---: | ---: | ---: |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(r)]
    i, f = r["ingest"], r["fanout"]
    lines += ["",
              *([warmup_text(r["warmup"])] if "warmup" in r else []),
              "- ingest: N / seconds from the worker's ready line (the baseline: from its "
              "partition assignment; the median of runs of "
              f"{i.get('baseline_runs_seconds')} s) to the N-th output seen on the topic; "
              "worker ready "
              f"{i['worker_start_seconds']} s after launch; first to N-th decision "
              f"{i['seconds_first_to_last_decision']} s; worker CPU "
              f"{cpu_text(i['worker_cpu_seconds'])}, broker CPU "
              f"{cpu_text(i['broker_cpu_seconds'])}.",
              "- fan-out: from publishing the deadline to the N-th task seen (the "
              f"baseline: the median of runs of {f.get('baseline_runs_seconds')} s); all "
              "partitions "
              f"reported after {f['seconds_until_all_partitions_reported']} s; worker CPU "
              f"{cpu_text(f['worker_cpu_seconds'])}, broker CPU "
              f"{cpu_text(f['broker_cpu_seconds'])}.",
              *([floor_text(i, f)] if "io_floor" in i and "io_floor" in f else []),
              *([faust_floor_text(i["faust_floor"])] if "faust_floor" in i else []),
              f"- memory: idle worker {r['memory']['idle_rss_bytes'] / 2**20:.1f} MiB; "
              f"RSS after fan-out {r['memory']['rss_after_fanout_bytes'] / 2**20:.1f} MiB.",
              recovery_text(r["recovery"]),
              f"- latency: {r['latency']['events']} cancellations at "
              f"{r['latency']['rate_per_second']}/s (achieved "
              f"{r['latency']['achieved_publish_rate']}/s), "
              f"{r['latency']['received']} decisions matched; publish to the decision's "
              f"send p50 {r['latency']['to_send_p50_ms']} / p99 "
              f"{r['latency']['to_send_p99_ms']} ms (the rest is the broker's and the "
              "reader's, under exactly-once mostly the wait for the commit); worker CPU "
              f"{cpu_text(r['latency'].get('worker_cpu_seconds', {}))}, broker CPU "
              f"{cpu_text(r['latency'].get('broker_cpu_seconds', {}))}. The "
              "baseline relays each event with raw aiokafka (same fetch wait); broker CPU "
              f"{cpu_text(r['latency'].get('baseline', {}).get('broker_cpu_seconds', {}))}.",
              "", "```json", json.dumps(r, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def recovery_text(rec: dict[str, Any]) -> str:
    def marks(case: dict[str, Any]) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v}"
                         for k, v in case["seconds_from_launch_to"].items())

    return (f"- recovery, seconds from launch: a clean restart (SIGTERM, start, same data "
            f"dir; {rec['store']} store): {marks(rec['clean_restart'])}; after SIGKILL, same "
            f"data dir: {marks(rec['after_kill'])}; a worker on the memory store, which "
            f"reads every changelog: {marks(rec['memory_store'])}.")


SUMMARY_KEYS = ("ingest.ratio", "fanout.ratio", "fanout.seconds", "latency.p99_ms",
                "memory.bytes_per_customer", "recovery.seconds")


def summary(r: dict[str, Any]) -> dict[str, Any]:
    """The headline figures under flat dotted keys (`ingest.ratio`, ...), with the
    machine and the broker, for scripts that compare runs."""
    flat: dict[str, Any] = {"broker": r.get("broker"), "n": r.get("n"),
                            "machine": r.get("machine")}
    for key in SUMMARY_KEYS:
        section, name = key.split(".")
        flat[key] = (r.get(section) or {}).get(name)
    return flat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="customers (default 20000)")
    parser.add_argument("--out", required=True, help="folder for results and logs")
    parser.add_argument("--broker", choices=["tansu", "kafka"], default="tansu")
    parser.add_argument("--guarantee", choices=["at_least_once", "exactly_once"],
                        help="processing guarantee (default: exactly_once on kafka, "
                             "at_least_once on tansu)")
    parser.add_argument("--profile", action="store_true",
                        help="run the worker under pyinstrument during ingest and fan-out")
    parser.add_argument("--warmup", type=int,
                        help="customers of the unmeasured warm-up run first (default: "
                        "min(N, 20000) on Apache Kafka, whose JVM compiles its hot paths "
                        "during the first load; 0 on tansu)")
    parser.add_argument("--baseline-runs", type=int, default=3,
                        help="runs of the ingest and fan-out baselines; the median counts (3)")
    parser.add_argument("--latency-rate", type=int, default=1000, help="events/s (1000)")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="seconds (20)")
    parser.add_argument("--warmup-latency-seconds", type=float, default=10.0,
                        help="seconds of the latency phase's traffic in the warm-up, through "
                        "the pipeline and the raw relay (10)")
    parser.add_argument("--phase-timeout", type=float,
                        help="seconds each phase may take (default 60 + N/150)")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for pattern in (".*-*", ".phase", "*.log", "profile-*", "results.*"):  # an earlier run's
        for stale in out.glob(pattern):
            stale.unlink()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    machine = machine_info()
    workers: list[BenchWorker] = []
    results: dict[str, Any] = {}
    ok = False
    with tempfile.TemporaryDirectory(prefix="waiver-bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        try:
            if args.broker == "kafka":
                from brokers.apache_kafka import KafkaServer

                server = KafkaServer(tmp / "kafka")
                stack.callback(server.stop)
                server.start()
                bootstrap, broker_pid = server.bootstrap, (server.proc.pid if server.proc
                                                           else None)
            else:
                bootstrap = stack.enter_context(embedded_broker(log_file=out / "broker.log"))
                broker_pid = tansu_pid(bootstrap.rsplit(":", 1)[1])
            step(f"{args.broker} broker on {bootstrap}; results in {out}")
            asyncio.run(bench(args, bootstrap, broker_pid, tmp, out, workers, results))
            ok = True
        except (Exception, asyncio.CancelledError) as exc:
            traceback.print_exc()
            results["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else \
                "interrupted (signal)" if isinstance(exc, asyncio.CancelledError) \
                else type(exc).__name__
        finally:
            for w in workers:
                if not w.running:
                    continue
                if ok:
                    w.stop(15)
                else:
                    w.kill()
    for marker in out.glob(".*-*"):
        marker.unlink()
    (out / ".phase").unlink(missing_ok=True)
    results["machine"] = machine
    results["loadavg_at_end"] = os.getloadavg()
    results["summary"] = summary(results)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if not ok:
        print(f"\nFAILED; partial results in {out / 'results.json'}", file=sys.stderr)
        return 1
    (out / "results.md").write_text(markdown(results))
    print()
    print(text_table(results))
    print(f"\nwritten: {out / 'results.json'}, {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
