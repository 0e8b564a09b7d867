"""Readiness of a freshly started container: it has an address on its tenant network and its health path
answers 2xx. Called by the executor before a new container may join routing or an old one may leave."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from reconciler.core.resources import Container

# A health endpoint slower than this is treated as not ready yet; probes repeat until the overall timeout.
PROBE_TIMEOUT = 1.0
PROBE_INTERVAL = 0.1


def probe_once(container: Container, client: httpx.Client) -> bool:
    if not container.ip or not container.running:
        return False
    try:
        response = client.get(f"http://{container.ip}:{container.port}{container.health}", timeout=PROBE_TIMEOUT)
    except httpx.HTTPError:
        return False
    return 200 <= response.status_code < 300


def wait_ready(
    refresh: Callable[[], Container | None],
    *,
    port: int,
    health: str,
    timeout: float,
    stop: threading.Event,
) -> tuple[Container | None, str]:
    """Poll until the container is running with an address and healthy; returns it, or None and why not."""
    deadline = time.monotonic() + timeout
    reason = "not observed yet"
    with httpx.Client(trust_env=False) as client:
        while time.monotonic() < deadline and not stop.is_set():
            current = refresh()
            if current is None:
                reason = "container vanished"
            elif current.state in ("exited", "dead"):
                return None, f"container {current.state} while starting"
            else:
                candidate = Container(**{**current.__dict__, "port": port, "health": health})
                if probe_once(candidate, client):
                    return candidate, "ready"
                reason = f"health check {health} on port {port} not answering 2xx"
            time.sleep(PROBE_INTERVAL)
    return None, f"not ready within {timeout:g}s: {reason}"
