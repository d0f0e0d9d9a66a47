"""Publish envelopes to Kafka and return only once the broker holds every one of them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from application.errors import BrokerUnavailable
from application.ports import Envelope

EVENT_ID_HEADER = "event_id"
ERROR_HEADER = "error"
MAX_ERROR_BYTES = 4096  # a dead letter's reason, not its stack trace: keeps records well under max.message.bytes


def broker_unavailable(error: BaseException) -> BrokerUnavailable:
    """aiokafka's connection, timeout and coordinator errors, as the one error callers wait out."""
    return BrokerUnavailable(f"the broker is unavailable ({type(error).__name__}: {str(error).strip()[:200]})")


def envelope_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    headers = [(EVENT_ID_HEADER, envelope.event_id.encode())]
    if envelope.error is not None:
        # Cut on bytes, then drop a possibly split trailing character so the header stays valid UTF-8.
        error = envelope.error.encode()[:MAX_ERROR_BYTES].decode("utf-8", "ignore")
        headers.append((ERROR_HEADER, error.encode()))
    return headers


class KafkaPublisher:
    """An idempotent producer: a retried send cannot duplicate or reorder a partition's messages.

    ``options`` go to AIOKafkaProducer as they are (TLS/SASL settings, timeouts).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "custsync-publisher",
        linger_ms: int = 5,
        publish_timeout: float = 5.0,
        **options: Any,
    ) -> None:
        # A healthy broker acknowledges in milliseconds. Beyond ``publish_timeout`` the caller is
        # told the broker is unavailable (a webhook answers 503 and Stripe retries; the relay
        # waits), rather than hanging for aiokafka's own 40 s request timeout.
        self._publish_timeout = publish_timeout
        self._config = dict(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            linger_ms=linger_ms,
            enable_idempotence=True,
            acks="all",
            **options,
        )
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Built here, not in __init__: aiokafka binds to the running loop on construction, and the
        # container may build this object before the worker's loop exists.
        producer = AIOKafkaProducer(**self._config)
        try:
            await producer.start()
        except BaseException as exc:
            await producer.stop()
            if isinstance(exc, KafkaError):
                raise BrokerUnavailable(f"cannot reach the broker at {self._config['bootstrap_servers']}: {exc}") from exc
            raise
        self._producer = producer

    async def check(self, topics: Sequence[str], timeout: float) -> None:
        """Readiness: the cluster answers a metadata request within ``timeout`` and has ``topics``;
        BrokerUnavailable (saying which) otherwise."""
        if self._producer is None:
            raise BrokerUnavailable("the producer is not started")
        try:
            metadata = await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout)
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(
                f"the broker at {self._config['bootstrap_servers']} did not answer: {type(exc).__name__} {exc}".rstrip()
            ) from exc
        missing = sorted(set(topics) - metadata.topics())
        if missing:
            raise BrokerUnavailable(f"topics missing: {', '.join(missing)} (run `custsync topics`)")

    async def stop(self) -> None:
        """Flush what is pending, then close; safe to call twice or without start()."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self._producer is None:
            raise RuntimeError("KafkaPublisher.publish() before start()")
        # send() only queues (in call order, so a key's messages keep their order); each returned
        # future resolves when the broker acknowledges. Queueing all first lets linger_ms batch them.
        acks: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self._publish_timeout):
                for e in envelopes:
                    headers = envelope_headers(e)
                    acks.append(await self._producer.send(e.topic, value=e.payload, key=e.key.encode(), headers=headers))
                results = await asyncio.gather(*(asyncio.shield(a) for a in acks), return_exceptions=True)
        except (KafkaError, TimeoutError) as exc:
            # No metadata, or no acknowledgement, in time: the broker is unreachable. What was
            # queued may still go out later; consumers drop such duplicates by event id.
            for ack in acks:
                ack.add_done_callback(_retrieve)
            raise broker_unavailable(exc) from exc
        for result in results:
            if isinstance(result, KafkaError):
                raise broker_unavailable(result) from result
            if isinstance(result, BaseException):
                raise result


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a late failure as seen (the caller was already told the broker is unavailable)."""
    if not future.cancelled():
        future.exception()
