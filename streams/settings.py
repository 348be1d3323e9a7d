"""Worker configuration from environment variables, overridable by CLI flags."""

import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT, SASLMechanism

from rules.program import Program, SendWindow, load_program

ENV_PREFIX = "WAIVER_"
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
GUARANTEES = ("auto", "exactly_once", "at_least_once")
STORES = ("rocksdb", "memory")


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = ""
    program_file: str | None = None
    send_window: str | None = None  # HH:MM-HH:MM, overrides the program file
    carrier_name: str | None = None  # the messages' sender name, overrides the program file
    partitions: int = 8
    replication_factor: int = 1
    app_id: str | None = None  # default: "<topic_prefix>waiver-pipeline"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: str = ".waiver-data"
    # Local table state: rocksdb (in data_dir, survives a restart) | memory (rebuilt
    # from the changelogs at every start).
    store: str = "rocksdb"
    # auto: exactly-once where the broker has transactions, at-least-once where it has
    # not (streams/guarantee.py) | exactly_once | at_least_once
    processing_guarantee: str = "auto"
    session_timeout: float = 10.0
    connect_timeout: float = 10.0  # how long a command waits for the broker to answer
    # Most events one write handles; a busy stream pays one broker round trip per batch.
    max_batch: int = 1000
    batch_wait_ms: float = 10.0  # longest wait to fill a batch (added to latency)
    # How long the stream consumer's fetch may wait for data (Faust hard-codes 1500 ms;
    # a broker that answers only when the wait expires then adds that to every event).
    fetch_max_wait_ms: int = 100
    # Static group membership (Kafka group.instance.id): a restarted worker with the
    # same id takes its partitions back without waiting out its old session.
    instance_id: str | None = None
    # Producer batching: records per partition gather up to this size, waiting at most
    # the linger while a request is in flight.
    producer_batch_bytes: int = 256 * 1024
    producer_linger_ms: float = 2.0
    # Compression of the worker's produce batches (outputs and changelogs): none | gzip |
    # snappy | lz4 | zstd. Every consumer of the outputs must read it (docs/deploy.md).
    compression: str = "none"
    # How often processed offsets are committed. Under exactly-once this is also when
    # outputs become visible to read_committed consumers: it bounds their latency.
    # Unset: 100 ms under exactly-once, 2800 ms (Faust's default) under at-least-once,
    # as Kafka Streams does (100 ms and 30 s).
    commit_interval_ms: float | None = None
    # Processes that compute large rounds (streams/rounds.py), for rounds over at least
    # round_pool_min customers of a partition. Unset: one per CPU; 0: every round in
    # the worker process.
    round_processes: int | None = None
    round_pool_min: int = 10000
    log_level: str = "info"
    log_format: str = "json"  # json | text
    # Lookup API: bearer token (WAIVER_API_TOKEN); this worker's URL for the others.
    api_token: str | None = field(default=None, repr=False)
    canonical_url: str | None = None
    # Managed Kafka: PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("compression", COMPRESSIONS),
                              ("processing_guarantee", GUARANTEES), ("store", STORES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{ENV_PREFIX}{name.upper()}: {getattr(self, name)!r} is not "
                                 f"one of {', '.join(allowed)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        """Read `WAIVER_<FIELD>` variables; non-None `overrides` (CLI flags) win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                kind = {int: int, float: float, int | None: int, float | None: float
                        }.get(f.type, str)
                try:
                    values[f.name] = kind(raw)
                except ValueError as exc:
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)  # type: ignore[arg-type]

    @property
    def application_id(self) -> str:
        return self.app_id or f"{self.topic_prefix}waiver-pipeline"

    @property
    def commit_interval(self) -> float:
        """Seconds between offset commits (see commit_interval_ms)."""
        if self.commit_interval_ms is not None:
            return self.commit_interval_ms / 1000
        return 0.1 if self.processing_guarantee == "exactly_once" else 2.8

    @property
    def bootstrap(self) -> str:
        """host:port for plain Kafka clients (strips Faust's `kafka://`)."""
        return ",".join(url.split("://", 1)[-1] for url in self.broker.split(";"))

    @property
    def url(self) -> str:
        """How other workers reach this one (lookups are routed to the owner)."""
        if self.canonical_url:
            return self.canonical_url
        host = self.web_host
        if host in ("0.0.0.0", "::"):
            # Listening everywhere: advertise this host's address (a container's hostname
            # is not resolvable by its peers, its address is).
            try:
                host = socket.gethostbyname(socket.gethostname())
            except OSError:
                host = socket.gethostname()
        return f"http://{host}:{self.web_port}"

    def credentials(self) -> CredentialsT | None:
        """Faust credentials for SSL and SASL; None for plain connections."""
        protocol = self.security_protocol.upper()
        if protocol == "PLAINTEXT":
            return None
        if protocol not in ("SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise ValueError(f"WAIVER_SECURITY_PROTOCOL: unknown protocol {protocol!r}")
        context = ssl.create_default_context(cafile=self.ssl_cafile) if "SSL" in protocol \
            else None
        if protocol == "SSL":
            return SSLCredentials(context)
        if not self.sasl_username or not self.sasl_password:
            raise ValueError("WAIVER_SASL_USERNAME and WAIVER_SASL_PASSWORD are required "
                             f"for {protocol}")
        return SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                               mechanism=SASLMechanism(self.sasl_mechanism.upper()),
                               ssl_context=context)

    def client_options(self) -> dict[str, Any]:
        """The same connection settings as keyword arguments for aiokafka clients."""
        return dict(credentials_to_aiokafka_auth(self.credentials()))

    def program(self) -> Program:
        program = load_program(self.program_file)
        if self.send_window:
            program = program.with_send_window(SendWindow.parse(self.send_window))
        if self.carrier_name:
            program = program.with_carrier_name(self.carrier_name)
        return program
