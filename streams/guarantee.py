"""Which processing guarantee a worker runs: asked of the broker at start-up.

`auto` (the default) runs exactly-once where the broker has transactions and
at-least-once where it has not (the embedded tansu broker); `exactly_once` on a
broker without them is refused with one line, before Faust fails on it deep
inside its start-up. The broker is asked the way the worker would use it: one
InitProducerId round trip for a transactional id of this application.
"""

import asyncio
from dataclasses import replace

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    BrokerResponseError,
    KafkaConnectionError,
    TransactionalIdAuthorizationFailed,
)

from streams.connect import quiet_clients
from streams.settings import Settings

PROBE_TIMEOUT = 30.0  # a fresh Kafka creates its transaction log on the first request


class GuaranteeError(RuntimeError):
    """The guarantee asked for cannot run on this broker (one line for the operator)."""


async def transactions_supported(settings: Settings, timeout: float = PROBE_TIMEOUT
                                 ) -> tuple[bool, str]:
    """Whether the broker runs transactions for this application, and why not."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, request_timeout_ms=int(timeout * 1000),
        transactional_id=f"{settings.application_id}-transactions-probe",
        **settings.client_options())
    try:
        with quiet_clients("aiokafka.producer.sender"):
            await asyncio.wait_for(producer.start(), timeout)
    except TransactionalIdAuthorizationFailed:
        return False, ("the broker refuses this application transactional ids (grant "
                       f"WRITE on TransactionalId prefix {settings.application_id})")
    except KafkaConnectionError:
        raise
    except BrokerResponseError as exc:
        return False, f"the broker answered InitProducerId with {type(exc).__name__}"
    except TimeoutError:
        raise GuaranteeError(f"the broker at {settings.bootstrap} did not answer a "
                             f"transactional InitProducerId within {timeout:.0f}s") from None
    finally:
        await producer.stop()
    return True, "the broker runs transactions"


async def resolve(settings: Settings) -> tuple[Settings, str]:
    """`settings` with the guarantee to run, and one line saying which and why."""
    asked = settings.processing_guarantee
    if asked == "at_least_once":
        return settings, ("at-least-once (as set): a crash can repeat a task, with the "
                          "same notification_id, never lose one")
    supported, why = await transactions_supported(settings)
    if supported:
        chosen = replace(settings, processing_guarantee="exactly_once")
        how = "as set" if asked == "exactly_once" else f"auto: {why}"
        return chosen, (f"exactly-once ({how}): each event's outputs, table changes and "
                        "offsets commit in one Kafka transaction (read outputs with "
                        "read_committed)")
    if asked == "exactly_once":
        raise GuaranteeError(f"exactly_once needs a broker with transactions, and {why}; "
                             "use --processing-guarantee auto or at_least_once")
    return replace(settings, processing_guarantee="at_least_once"), (
        f"at-least-once (auto: {why}, so no transactions): a crash can repeat a task, with "
        "the same notification_id, never lose one")
