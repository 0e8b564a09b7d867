"""Prometheus metrics and the health endpoints, served by ``reconciler run`` on one port.

One registry per process (built in ``main``, not at import), so tests can run several reconcilers side by side.
``/metrics`` is the exposition format (checked with ``promtool check metrics`` in the tests), ``/healthz`` says
the process is alive, ``/readyz`` runs the readiness checks the runtime registers (database, Docker, leader).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PHASES = ("Pending", "Ready", "Progressing", "Stopped", "Absent", "Failed", "Degraded", "Invalid")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.passes = Counter(
            "reconciler_passes", "Reconcile passes by result (ok, error, refused).", ["result"], registry=r
        )
        self.pass_duration = Histogram(
            "reconciler_pass_duration_seconds",
            "Duration of a reconcile pass.",
            ["scope"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.actions = Counter(
            "reconciler_actions", "Changes applied, by resource kind and action.", ["kind", "action"], registry=r
        )
        self.drift = Counter(
            "reconciler_drift", "Changes found necessary by the diff, by resource kind.", ["kind"], registry=r
        )
        self.heals = Counter(
            "reconciler_heals", "Changes that restored an already-applied spec (self-heal).", ["kind"], registry=r
        )
        self.refused = Counter("reconciler_refused_changes", "Changes withheld by a policy.", ["policy"], registry=r)
        self.tenant_errors = Counter("reconciler_tenant_errors", "Failed tenant reconciles.", ["tenant"], registry=r)
        self.tenants = Gauge("reconciler_tenants", "Tenants by phase after the last pass.", ["phase"], registry=r)
        self.last_success = Gauge(
            "reconciler_last_success_timestamp_seconds", "Unix time of the last pass without errors.", registry=r
        )
        self.docker_calls = Counter(
            "reconciler_docker_calls", "Docker engine calls by kind (list, read, mutate).", ["kind"], registry=r
        )
        self.queue_depth = Gauge("reconciler_queue_depth", "Keys waiting in the work queue.", registry=r)
        self.reconciles = Counter("reconciler_reconciles", "Reconciles started, by trigger.", ["trigger"], registry=r)
        self.nudges = Counter(
            "reconciler_nudges_received", "Nudge messages received, by outcome.", ["outcome"], registry=r
        )
        self.broker_connected = Gauge("reconciler_broker_connected", "1 when connected to RabbitMQ.", registry=r)
        self.leader = Gauge("reconciler_leader", "1 when this instance holds the leader lock.", registry=r)
        self.event_stream_connected = Gauge(
            "reconciler_event_stream_connected", "1 while the Docker event stream is open.", registry=r
        )
        self.queue_wait = Histogram(
            "reconciler_queue_wait_seconds",
            "Time from queueing a key to the start of its reconcile, by trigger.",
            ["trigger"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.reconcile_timeouts = Counter(
            "reconciler_reconcile_timeouts", "Reconciles interrupted for running past the timeout.", registry=r
        )
        self.crash_loops = Gauge(
            "reconciler_crash_loops", "Replicas crash-looping now (restarts withheld while backing off).", registry=r
        )
        self.alerts = Counter(
            "reconciler_alerts", "Alert messages by outcome (sent, failed, dropped, logged).", ["outcome"], registry=r
        )
        for phase in PHASES:
            self.tenants.labels(phase=phase).set(0)
        for result in ("ok", "error", "refused"):
            self.passes.labels(result=result)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """Serves /metrics, /healthz and /readyz on a background thread."""

    def __init__(self, metrics: Metrics, address: str, readiness: Callable[[], dict[str, str]] | None = None) -> None:
        host, _, port = address.rpartition(":")
        metrics_ref = metrics
        ready_ref = readiness or (lambda: {})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, metrics_ref.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._send(200, b"ok\n", "text/plain")
                elif path == "/readyz":
                    problems = ready_ref()
                    body = "".join(f"{k}: {v}\n" for k, v in sorted(problems.items())) or "ready\n"
                    failing = any(not v.startswith("ok") and v != "standby" for v in problems.values())
                    self._send(503 if failing else 200, body.encode(), "text/plain")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
