"""The readiness probe is bounded (``runtime.passes.readiness``): one probe ends within its timeout whatever the
health endpoint does, at most ``BODY_CAP`` bytes of an answer are read, and ``wait_ready`` returns by its deadline.

The endpoints are real sockets on 127.0.0.1 served by a thread: a healthy one, a 503, one that trickles its
headers a byte every 0.2 s (each read is within httpx's timeout, so only a total deadline stops it), and one whose
body never ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from reconciler.core.resources import Container
from reconciler.runtime.passes.readiness import probe_once, wait_ready

Handler = Callable[[socket.socket], None]


def _ok(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def _unavailable(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def _trickle(conn: socket.socket) -> None:
    conn.recv(4096)
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


def _endless(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    while True:
        conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], int]]:
    sockets: list[socket.socket] = []
    served: list[int] = []

    def start(handler: Handler) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        sockets.append(listener)

        def loop() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                served.append(1)
                # OSError: the client hung up, which is what a bounded probe does.
                with conn, contextlib.suppress(OSError):
                    handler(conn)

        threading.Thread(target=loop, daemon=True).start()
        port: int = listener.getsockname()[1]
        return port

    yield start
    for listener in sockets:
        listener.close()


def _container(port: int) -> Container:
    return Container(
        name="erp-acme-a-0-x", tenant="acme", service="a", replica=0, image="i", spec_hash="h", network="n",
        volume="v", port=port, ip="127.0.0.1", state="running",
    )  # fmt: skip


def test_a_healthy_endpoint_is_ready(serve: Callable[[Handler], int]) -> None:
    assert probe_once(_container(serve(_ok))) == (True, "answered 200")


def test_a_503_says_what_it_answered(serve: Callable[[Handler], int]) -> None:
    assert probe_once(_container(serve(_unavailable))) == (False, "answered 503")


def test_a_server_trickling_its_headers_cannot_hold_a_probe(serve: Callable[[Handler], int]) -> None:
    started = time.monotonic()
    ok, detail = probe_once(_container(serve(_trickle)), timeout=0.8)
    # Unbounded, the trickle would take 40 s; the slack is for a loaded machine, not a speed claim.
    assert time.monotonic() - started < 4.0
    assert (ok, detail) == (False, "no complete answer within 0.8s")


def test_an_endless_body_is_read_only_up_to_the_cap(serve: Callable[[Handler], int]) -> None:
    # Reading the whole body would never end (data keeps flowing, so no read times out): the probe would overrun.
    started = time.monotonic()
    assert probe_once(_container(serve(_endless)), timeout=5) == (True, "answered 200")
    assert time.monotonic() - started < 4.0  # reading on would last until the 5 s timeout


def test_wait_ready_returns_by_its_deadline_against_a_trickling_server(serve: Callable[[Handler], int]) -> None:
    container = _container(serve(_trickle))
    started = time.monotonic()
    stop = threading.Event()
    ready, why = wait_ready(lambda: container, port=container.port, health="/health", timeout=1.5, stop=stop)
    elapsed = time.monotonic() - started
    # At least the deadline; at most the deadline with slack for a loaded machine (the trickle lasts 40 s).
    assert ready is None and 1.4 < elapsed < 5.0, elapsed
    assert why.startswith("not ready within 1.5s: health check /health on port")
    assert "no complete answer within" in why


def test_wait_ready_cuts_the_last_probe_to_the_time_left() -> None:
    timeouts: list[float] = []

    def slow(candidate: Container, timeout: float) -> tuple[bool, str]:
        timeouts.append(timeout)
        time.sleep(timeout)
        return False, "answered 500"

    container = _container(1)
    started = time.monotonic()
    ready, why = wait_ready(lambda: container, port=1, health="/h", timeout=1.3, stop=threading.Event(), probe=slow)
    # The probes' own timeouts prove the cut; the wall clock only that no full second probe ran (about 2 s).
    assert ready is None and time.monotonic() - started < 1.9
    assert timeouts[0] == 1.0 and timeouts[-1] < 0.3
    assert why == "not ready within 1.3s: health check /h on port 1 not answering 2xx (answered 500)"
