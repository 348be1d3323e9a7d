"""A real Apache Kafka 4.x broker (single node, KRaft combined mode) on loopback.

The jars come from Maven Central through `mvn`, once, into a cache folder; the
broker runs as a child `java` process. Unlike tansu it keeps its data on disk and
supports transactions, so exactly-once and crash tests can run against it.
"""

import asyncio
import base64
import os
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from aiokafka.admin import AIOKafkaAdminClient

from brokers.tansu import free_port, wait_for_port

DEFAULT_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"  # the log4j2 that kafka 4.x itself depends on
READY_TIMEOUT = 90.0

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>kafka-libs</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

# Everything to stdout, which KafkaServer sends to data_dir/server.log.
LOG4J2 = """appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def default_cache_dir() -> Path:
    env = os.environ.get("WAIVER_KAFKA_CACHE")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".cache" / "kafka"


def ensure_kafka(version: str = DEFAULT_VERSION, cache_dir: Path | None = None) -> Path:
    """Make sure `<cache_dir>/kafka-<version>/libs` holds the broker's jars; return that home."""
    home = (cache_dir or default_cache_dir()) / f"kafka-{version}"
    marker = home / "libs" / ".complete"
    if marker.exists():
        return home
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(POM.format(version=version, log4j=LOG4J_VERSION))
    (home / "log4j2.properties").write_text(LOG4J2)
    cmd = ["mvn", "-q", "-B", "dependency:copy-dependencies", "-DoutputDirectory=libs",
           "-DincludeScope=runtime"]
    done = subprocess.run(cmd, cwd=home, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"mvn could not fetch kafka {version}:\n{done.stdout[-3000:]}"
                           f"{done.stderr[-3000:]}")
    marker.write_text(version + "\n")
    return home


def _cluster_id() -> str:
    """A random Kafka Uuid (url-safe base64, 22 chars) that the CLI won't take for an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


async def _probe(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()


class KafkaServer:
    """One broker+controller node whose data lives in `data_dir`; use as a context manager."""

    def __init__(self, data_dir: Path, port: int | None = None,
                 version: str = DEFAULT_VERSION) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.controller_port = free_port()
        self.version = version
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _write_config(self) -> Path:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",  # default 50 makes the first group slow
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # after a kill, the controller fences the dead incarnation only when its session
            # times out (default 9 s): keep that short so a crash-restart takes ~5 s
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            # Upstream systems may publish events of several MiB (a cluster set up for
            # them): the worker must cope, though it writes nothing that large itself.
            "message.max.bytes": str(8 << 20),
        }
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _java(self, home: Path, *args: str) -> list[str]:
        return ["java", "-Xmx512m", "-Xms256m", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
                "-cp", str(home / "libs" / "*"), *args]

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the broker is already running")
        home = ensure_kafka(self.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = str(self._write_config())
        if not (self.data_dir / "logs" / "meta.properties").exists():
            fmt = self._java(home, "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                             "-c", config)
            done = subprocess.run(fmt, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"kafka storage format failed:\n{done.stdout}{done.stderr}")
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self._java(home, "kafka.Kafka", config),
                                         stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            wait_for_port(self.port, READY_TIMEOUT, self.proc)
            while True:
                try:  # in a thread of its own: start() may be called inside an event loop
                    with ThreadPoolExecutor(1) as pool:
                        pool.submit(asyncio.run, _probe(self.bootstrap)).result()
                    return
                except Exception:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.5)
        except Exception as exc:
            self.kill()
            tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"kafka did not come up on {self.bootstrap}: {exc!r}\n"
                               f"--- tail of {self.log_file} ---\n{tail}") from exc

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful shutdown (SIGTERM); SIGKILL if it takes longer than `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Crash the broker (SIGKILL): no flush, no controlled shutdown."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "KafkaServer":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
