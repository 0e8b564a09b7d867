"""Readiness of a freshly started container: it has an address on its tenant network and its health path
answers 2xx. Called by the executor before a new container may join routing or an old one may leave, and
before it chooses which of two containers in one slot stays (``core.diff``'s interrupted replacements).

Bounded on every side, because the health endpoint runs tenant code: one probe is over within its timeout
whatever the server does (it runs in a helper thread, abandoned with its connection closed when it overruns:
a server that trickles its headers byte by byte cannot hold a pass), at most ``BODY_CAP`` bytes of a response
are read, and ``wait_ready`` returns by its deadline: the last probe and pause are cut to the time left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from reconciler.core.resources import Container

# A health endpoint slower than this is treated as not ready yet; probes repeat until the overall timeout.
PROBE_TIMEOUT = 1.0
PROBE_INTERVAL = 0.1
# The status line decides; the body is read only so far (a health path that streams a file costs nothing).
BODY_CAP = 64 * 1024
# Below this much time left a probe is not started: it could not finish anyway.
MIN_PROBE = 0.05


def _exchange(client: httpx.Client, url: str, deadline: float) -> tuple[bool, str]:
    with client.stream("GET", url) as response:
        read = 0
        for chunk in response.iter_raw():
            read += len(chunk)
            if read >= BODY_CAP or time.monotonic() >= deadline:
                break
        status = response.status_code
    return 200 <= status < 300, f"answered {status}"


def probe_once(container: Container, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """One GET of the health path, over within ``timeout`` seconds; whether it answered 2xx, and what it did."""
    if not container.ip or not container.running:
        return False, "no address yet"
    host = f"[{container.ip}]" if ":" in container.ip else container.ip
    url = f"http://{host}:{container.port}{container.health}"
    deadline = time.monotonic() + timeout
    client = httpx.Client(trust_env=False, timeout=timeout)
    outcome: list[tuple[bool, str]] = []

    def run() -> None:
        try:
            outcome.append(_exchange(client, url, deadline))
        except Exception as exc:  # refused, reset, timed out, or closed under it by the caller
            outcome.append((False, f"no answer ({type(exc).__name__})"))

    worker = threading.Thread(target=run, name=f"probe-{container.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    # Closing the pool ends an exchange that overran; the abandoned thread then fails on its next read.
    client.close()
    if not outcome:
        return False, f"no complete answer within {timeout:g}s"
    return outcome[0]


def wait_ready(
    refresh: Callable[[], Container | None],
    *,
    port: int,
    health: str,
    timeout: float,
    stop: threading.Event,
    probe: Callable[[Container, float], tuple[bool, str]] = probe_once,
) -> tuple[Container | None, str]:
    """Poll until the container is running with an address and healthy; returns it, or None and why not.

    Returns within ``timeout`` (plus one ``refresh``, a bounded Docker call) whatever the container does.
    """
    deadline = time.monotonic() + timeout
    reason = "not observed yet"
    while not stop.is_set():
        current = refresh()
        if current is None:
            reason = "container vanished"
        elif current.state in ("exited", "dead"):
            return None, f"container {current.state} while starting"
        else:
            left = deadline - time.monotonic()
            if left < MIN_PROBE:
                break
            candidate = Container(**{**current.__dict__, "port": port, "health": health})
            ok, detail = probe(candidate, min(PROBE_TIMEOUT, left))
            if ok:
                return candidate, "ready"
            reason = f"health check {health} on port {port} not answering 2xx ({detail})"
        left = deadline - time.monotonic()
        if left <= 0:
            break
        stop.wait(min(PROBE_INTERVAL, left))
    return None, f"not ready within {timeout:g}s: {reason}"
