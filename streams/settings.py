"""Worker configuration from environment variables, overridable by CLI flags."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from rules.program import Program, SendWindow, load_program

ENV_PREFIX = "WAIVER_"


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = ""
    program_file: str | None = None
    send_window: str | None = None  # HH:MM-HH:MM, overrides the program file
    partitions: int = 8
    replication_factor: int = 1
    app_id: str | None = None  # default: "<topic_prefix>waiver-pipeline"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: str = ".waiver-data"
    processing_guarantee: str = "at_least_once"
    session_timeout: float = 10.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        """Read `WAIVER_<FIELD>` variables; non-None `overrides` (CLI flags) win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                kind = f.type if f.type in (int, float) else str
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
    def bootstrap(self) -> str:
        """host:port for plain Kafka clients (strips Faust's `kafka://`)."""
        return ",".join(url.split("://", 1)[-1] for url in self.broker.split(";"))

    def program(self) -> Program:
        program = load_program(self.program_file)
        if self.send_window:
            program = program.with_send_window(SendWindow.parse(self.send_window))
        return program
