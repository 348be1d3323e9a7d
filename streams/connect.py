"""Is the broker there? Asked once, up front, by every command that talks to it, so
that a wrong address is one clear line after a bounded wait, not a traceback after
thirty retries."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.settings import Settings


class BrokerUnreachable(RuntimeError):
    pass


@contextlib.contextmanager
def quiet_clients(name: str = "aiokafka") -> Iterator[None]:
    """aiokafka logs every failed connection attempt (and a refused InitProducerId) as
    an error: the command says what went wrong itself."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def wait_for_broker(settings: Settings) -> None:
    """Return once the broker answers a metadata request; raise BrokerUnreachable after
    `settings.connect_timeout` seconds of trying."""
    deadline = time.monotonic() + settings.connect_timeout
    with quiet_clients():
        while True:
            left = deadline - time.monotonic()
            client = AIOKafkaClient(bootstrap_servers=settings.bootstrap,
                                    request_timeout_ms=max(int(left * 1000), 1000),
                                    **settings.client_options())
            try:
                await asyncio.wait_for(client.bootstrap(), max(left, 0.1))
                return
            except (TimeoutError, KafkaError, OSError):
                pass
            finally:
                await client.close()
            if time.monotonic() + 0.5 > deadline:
                break
            await asyncio.sleep(0.5)
    raise BrokerUnreachable(
        f"no Kafka broker answers at {settings.bootstrap} after "
        f"{settings.connect_timeout:g} s: check that it runs and that --broker / "
        "WAIVER_BROKER points at it (wait longer with --connect-timeout / "
        "WAIVER_CONNECT_TIMEOUT)")
