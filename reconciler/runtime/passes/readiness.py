"""Readiness of a freshly started container: it has an address on its tenant network and its health path
answers 2xx. Called by the executor before a new container may join routing or an old one may leave, and
before it chooses which of two containers in one slot stays (``core.diff``'s interrupted replacements).

Bounded on every side, because the health endpoint runs tenant code: one probe is over within its timeout
whatever the server does (it runs in a helper thread, abandoned with its connection closed when it overruns:
a server that trickles its headers byte by byte cannot hold a pass), at most ``BODY_CAP`` bytes of a response
are read, and ``wait_ready`` returns by its deadline: the last probe and pause are cut to the time left.

``wait_all_ready`` waits for every new container of one phase of a tenant at once: one re-read of all of them
per round (not one list call per container every 0.1 s) and their probes in parallel, each container bounded by
the same timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from reconciler.core.resources import Container

if TYPE_CHECKING:
    # Imported by the first probe (a pass that starts no container probes nothing): httpx brings click, rich
    # and pygments with it, a large share of a one-shot command's start (docs/benchmarks.md, "CLI start").
    import httpx

# A health endpoint slower than this is treated as not ready yet; probes repeat until the overall timeout.
PROBE_TIMEOUT = 1.0
PROBE_INTERVAL = 0.1
# The status line decides; the body is read only so far (a health path that streams a file costs nothing).
BODY_CAP = 64 * 1024
# Below this much time left a probe is not started: it could not finish anyway.
MIN_PROBE = 0.05

Probe = Callable[[Container, float], tuple[bool, str]]


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
    import httpx

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
    probe: Probe = probe_once,
) -> tuple[Container | None, str]:
    """Poll until the container is running with an address and healthy; returns it, or None and why not.

    Returns within ``timeout`` (plus one ``refresh``, a bounded Docker call) whatever the container does.
    """
    results = wait_all_ready(
        lambda names: {name: refresh() for name in names},
        {"container": (port, health)},
        timeout=timeout,
        stop=stop,
        probe=probe,
    )
    return results["container"]


def wait_all_ready(
    refresh: Callable[[Sequence[str]], Mapping[str, Container | None]],
    waiting: Mapping[str, tuple[int, str]],
    *,
    timeout: float,
    stop: threading.Event,
    probe: Probe = probe_once,
) -> dict[str, tuple[Container | None, str]]:
    """Wait for several containers at once (name → (port, health path)); for each, it ready or None and why.

    One poll loop for all: each round re-reads every container still waiting with one ``refresh`` (the
    executor makes that one list call for the tenant), probes the candidates in parallel, and drops those that
    are ready or have died. Every container is bounded by the same ``timeout``; the whole returns within it
    (plus one ``refresh``). When ``stop`` is set the containers still waiting come back as not ready.
    """
    deadline = time.monotonic() + timeout
    pending = dict(waiting)
    reasons = dict.fromkeys(pending, "not observed yet")
    results: dict[str, tuple[Container | None, str]] = {}
    while pending and not stop.is_set():
        current = refresh(list(pending))
        candidates: list[tuple[str, Container]] = []
        for name, (port, health) in list(pending.items()):
            found = current.get(name)
            if found is None:
                reasons[name] = "container vanished"
            elif found.state in ("exited", "dead"):
                results[name] = (None, f"container {found.state} while starting")
                del pending[name]
            else:
                candidates.append((name, Container(**{**found.__dict__, "port": port, "health": health})))
        left = deadline - time.monotonic()
        if left < MIN_PROBE:
            break
        answers = _probe_all(probe, [c for _, c in candidates], min(PROBE_TIMEOUT, left))
        for (key, candidate), (ok, detail) in zip(candidates, answers, strict=True):
            if ok:
                results[key] = (candidate, "ready")
                del pending[key]
            else:
                port, health = waiting[key]
                reasons[key] = f"health check {health} on port {port} not answering 2xx ({detail})"
        left = deadline - time.monotonic()
        if not pending or left <= 0:
            break
        stop.wait(min(PROBE_INTERVAL, left))
    for name in pending:
        results[name] = (None, f"not ready within {timeout:g}s: {reasons[name]}")
    return results


def _probe_all(probe: Probe, candidates: Sequence[Container], timeout: float) -> list[tuple[bool, str]]:
    """Probe every candidate at the same time; answers in the order of ``candidates``."""
    if len(candidates) <= 1:
        return [probe(c, timeout) for c in candidates]
    answers: list[tuple[bool, str]] = [(False, "no answer")] * len(candidates)

    def one(index: int) -> None:
        answers[index] = probe(candidates[index], timeout)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(candidates))]
    for thread in threads:
        thread.start()
    for thread in threads:
        # probe_once ends within its timeout; a custom probe that overruns is left behind as "no answer".
        thread.join(timeout + 1.0)
    return list(answers)
