"""Nudges over RabbitMQ: "reconcile this tenant now" messages from the web UI (and ``reconciler nudge``).

A nudge carries a key, never state: the consumer checks the message, hands the tenant name to the loop's
``WorkQueue`` with priority 0 (before periodic resync work) and acknowledges it; the reconcile that follows
re-reads the database. Message format, names and guarantees are in docs/messages.md.

The consumer runs on its own thread with its own ``pika.BlockingConnection`` (pika connections are not
thread-safe; the work queue is). A malformed message (oversized, not JSON, wrong shape, unknown tenant) is
logged, counted and rejected without requeue, which dead-letters it to ``<queue>.dead`` for inspection: it never
stops the consumer. When the broker is down at start or goes away, the consumer says so in the log and in
``reconciler_broker_connected`` and reconnects with backoff while the periodic resync keeps converging.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from sqlalchemy.engine import Engine

from desired_state.load import load_desired_state
from reconciler.runtime.service.workqueue import ALL, WorkQueue
from reconciler.runtime.telemetry.metrics import Metrics

log = logging.getLogger("reconciler.nudges")

ROUTING_KEY = "nudge"
# A nudge is a few dozen bytes; anything much larger is not one, and is not parsed at all.
MAX_MESSAGE_BYTES = 4096
MAX_TEXT = 200  # reason, requested_by
MAX_TENANT = 100
# The queue keeps at most this many nudges while no reconciler consumes (older ones are dead-lettered: a nudge
# only brings work forward, the resync does it anyway); the dead-letter queue keeps the last ones for people.
QUEUE_MAX_LENGTH = 10_000
DEAD_MAX_LENGTH = 1_000
# Deliveries in flight per consumer: enough to drain a burst quickly, small enough to stay cheap.
PREFETCH = 500
# A nudge waits this long in the work queue, so a burst for one tenant folds into one reconcile.
NUDGE_DEBOUNCE = 0.05
RECONNECT_INITIAL = 1.0
RECONNECT_MAX = 10.0
HEARTBEAT = 15
# How often the consumer thread looks up from the socket to check whether it should stop.
POLL = 0.5
# A tenant not in the cached names makes the consumer reread the database, at most this often.
NAMES_REFRESH = 0.2


class MalformedNudge(ValueError):
    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class Nudge:
    tenant: str | None  # None: every tenant
    reason: str = ""
    requested_by: str = ""

    def encode(self) -> bytes:
        body: dict[str, Any] = {"tenant": self.tenant} if self.tenant is not None else {"all": True}
        if self.reason:
            body["reason"] = self.reason
        if self.requested_by:
            body["requested_by"] = self.requested_by
        return json.dumps(body).encode()

    def describe(self) -> str:
        target = f"tenant={self.tenant}" if self.tenant is not None else "all tenants"
        extra = "".join(f" {k}={v!r}" for k, v in (("reason", self.reason), ("by", self.requested_by)) if v)
        return target + extra


def _text(body: dict[str, Any], field: str) -> str:
    value = body.get(field, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise MalformedNudge("invalid", f"{field} must be a string of at most {MAX_TEXT} characters")
    return value


def parse_nudge(raw: bytes) -> Nudge:
    """The nudge in a message body, or ``MalformedNudge`` saying what is wrong (tenant existence not checked)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedNudge("too_large", f"{len(raw)} bytes; a nudge has at most {MAX_MESSAGE_BYTES}")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedNudge("invalid_json", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedNudge("invalid", 'not a JSON object; expected {"tenant": "acme"} or {"all": true}')
    tenant = body.get("tenant")
    every = body.get("all", False)
    if every is not True and every is not False:
        raise MalformedNudge("invalid", '"all" must be true or false')
    if tenant is not None and (not isinstance(tenant, str) or not tenant.strip() or len(tenant) > MAX_TENANT):
        raise MalformedNudge("invalid", f'"tenant" must be a tenant name (a string of 1-{MAX_TENANT} characters)')
    if (tenant is None) == (not every):
        raise MalformedNudge("invalid", 'give exactly one of "tenant": "<name>" and "all": true')
    return Nudge(tenant=tenant, reason=_text(body, "reason"), requested_by=_text(body, "requested_by"))


def _preview(raw: bytes) -> str:
    return repr(raw[:60]) + ("..." if len(raw) > 60 else "")


@dataclass(frozen=True)
class Topology:
    """Exchange and queues; declared (idempotently, durable) by the consumer and by every publisher."""

    exchange: str
    queue: str

    @property
    def dead_exchange(self) -> str:
        return f"{self.exchange}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.queue}.dead"

    def declare(self, channel: Any) -> None:
        channel.exchange_declare(self.dead_exchange, exchange_type="fanout", durable=True)
        channel.queue_declare(self.dead_queue, durable=True, arguments={"x-max-length": DEAD_MAX_LENGTH})
        channel.queue_bind(self.dead_queue, self.dead_exchange)
        channel.exchange_declare(self.exchange, exchange_type="direct", durable=True)
        channel.queue_declare(
            self.queue,
            durable=True,
            arguments={"x-dead-letter-exchange": self.dead_exchange, "x-max-length": QUEUE_MAX_LENGTH},
        )
        channel.queue_bind(self.queue, self.exchange, routing_key=ROUTING_KEY)


def connection_parameters(url: str, *, timeout: float = 5.0) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = HEARTBEAT
    params.connection_attempts = 1
    params.socket_timeout = timeout
    params.blocked_connection_timeout = 30
    return params


def where(url: str) -> str:
    """host:port of a broker URL (never the credentials), for log lines and errors."""
    params = pika.URLParameters(url)
    return f"{params.host}:{params.port}"


class NudgePublisher:
    """Publishes nudges on one connection: persistent and mandatory, with publisher confirms (a nudge that
    reached no queue, or that the broker refused, raises). ``confirm=False`` trades that for throughput."""

    def __init__(self, url: str, topology: Topology, *, timeout: float = 10.0, confirm: bool = True) -> None:
        self.topology = topology
        self._connection = pika.BlockingConnection(connection_parameters(url, timeout=timeout))
        self._channel = self._connection.channel()
        topology.declare(self._channel)
        if confirm:
            self._channel.confirm_delivery()

    def publish(self, nudge: Nudge) -> None:
        self.publish_raw(nudge.encode())

    def publish_raw(self, body: bytes) -> None:
        self._channel.basic_publish(
            self.topology.exchange,
            ROUTING_KEY,
            body,
            properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
            mandatory=True,
        )

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()


@contextmanager
def nudge_publisher(
    url: str, topology: Topology, *, timeout: float = 10.0, confirm: bool = True
) -> Iterator[NudgePublisher]:
    publisher = NudgePublisher(url, topology, timeout=timeout, confirm=confirm)
    try:
        yield publisher
    finally:
        publisher.close()


class TenantNames:
    """Which tenants the database has (valid or not), cached; a miss rereads it at most every 0.2 s."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._names: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def __call__(self, tenant: str) -> bool:
        with self._lock:
            if tenant in self._names:
                return True
            if time.monotonic() - self._read_at >= NAMES_REFRESH:
                self._names = load_desired_state(self.engine).known
                self._read_at = time.monotonic()
            return tenant in self._names


class NudgeConsumer:
    def __init__(
        self,
        url: str,
        topology: Topology,
        queue: WorkQueue,
        known: Callable[[str], bool],
        stop: threading.Event,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.url = url
        self.topology = topology
        self.queue = queue
        self.known = known
        self.stop = stop
        self.metrics = metrics
        self.thread = threading.Thread(target=self._run, name="nudges", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # --- the connection loop --------------------------------------------------------------------------------

    def _connected(self, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.broker_connected.set(1 if up else 0)

    def _run(self) -> None:
        delay = RECONNECT_INITIAL
        broker = where(self.url)
        was_up = True  # so that the first failure is a warning
        while not self.stop.is_set():
            connection = None
            try:
                connection = pika.BlockingConnection(connection_parameters(self.url))
                channel = connection.channel()
                self.topology.declare(channel)
                channel.basic_qos(prefetch_count=PREFETCH)
                channel.basic_consume(self.topology.queue, self._on_message)
                self._connected(True)
                log.info("connected to RabbitMQ at %s: consuming nudges from %s", broker, self.topology.queue)
                was_up, delay = True, RECONNECT_INITIAL
                while not self.stop.is_set():
                    connection.process_data_events(time_limit=POLL)
            except pika.exceptions.AMQPError as exc:
                why = f"{type(exc).__name__}: {exc}".rstrip(": ")
                report = log.warning if was_up else log.info
                report(
                    "RabbitMQ at %s unavailable (%s): nudges paused, periodic resync continues; retrying in %.0fs",
                    broker,
                    why,
                    delay,
                )
                was_up = False
            except Exception:
                log.exception("nudge consumer failed; reconnecting in %.0fs", delay)
                was_up = False
            finally:
                self._connected(False)
                if connection is not None and connection.is_open:
                    try:
                        connection.close()
                    except Exception as exc:
                        log.debug("closing the RabbitMQ connection: %s", exc)
            if self.stop.wait(delay):
                return
            delay = min(delay * 2, RECONNECT_MAX)

    # --- one message ----------------------------------------------------------------------------------------

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.nudges.labels(outcome=outcome).inc()

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        try:
            nudge = parse_nudge(body)
            if nudge.tenant is not None and not self.known(nudge.tenant):
                raise MalformedNudge("unknown_tenant", f"no tenant {nudge.tenant!r} in the database")
        except MalformedNudge as exc:
            log.warning(
                "nudge rejected (%s, %d bytes): %s; dead-lettered: %s", exc.outcome, len(body), exc, _preview(body)
            )
            self._count(exc.outcome)
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        except Exception as exc:  # e.g. the database is down: requeueing would spin, the resync covers it
            log.warning("nudge not handled (%s: %s); dropped: %s", type(exc).__name__, exc, _preview(body))
            self._count("error")
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        log.debug("nudge: %s", nudge.describe())
        self.queue.add(nudge.tenant or ALL, NUDGE_DEBOUNCE, priority=0, trigger="nudge")
        self._count("accepted")
        channel.basic_ack(method.delivery_tag)
