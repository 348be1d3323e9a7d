"""Run `waiver worker` as a child process (demo, tests, benchmarks)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streams.settings import ENV_PREFIX, Settings

READY_LINE = "waiver worker ready: tables recovered, processing"
BANNER = "waiver worker: broker "  # the first line of `waiver worker`


class WorkerProcess:
    """A worker in its own process, logging to `log_file`; kill it like a real one."""

    def __init__(self, settings: Settings, log_file: Path) -> None:
        self.settings = settings
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def environment(self) -> dict[str, str]:
        """The settings that differ from the defaults, as the variables a user would set."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        defaults = vars(Settings())
        for name, value in vars(self.settings).items():
            if value is not None and value != defaults[name]:
                env[ENV_PREFIX + name.upper()] = str(value)
        return env

    def start(self, timeout: float = 180.0) -> "WorkerProcess":
        """Launch the worker and wait for its ready line."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> "WorkerProcess":
        """Launch the worker, without waiting for it."""
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        out = self.log_file.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"],
                                     env=self.environment(), stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        return self

    def log_text(self) -> str:
        with self.log_file.open("rb") as f:
            f.seek(self._log_offset)
            return f.read().decode("utf-8", errors="replace")

    def guarantee_line(self) -> str:
        """What the worker's first line says about its processing guarantee, and why."""
        for line in self.log_text().splitlines():
            if line.startswith(BANNER):
                return line.rsplit("; ", 1)[-1]
        return "(no start-up line in the worker's log)"

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log_text():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n"
                                   f"{self.log_text()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout:.0f}s:\n{self.log_text()[-3000:]}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it hangs."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
