"""A Unix socket in front of the real Docker engine that can stall or break, for tests of the driver's bounds.

``EngineLink`` forwards every request to /var/run/docker.sock byte for byte, except that once ``stall_posts`` is
set a connection whose next request is a POST (a mutation) is never answered: the engine looks wedged to the
client while reads still work. ``close`` removes the socket: later requests meet a refused connection.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from pathlib import Path

ENGINE_SOCKET = "/var/run/docker.sock"
CHUNK = 64 * 1024


class EngineLink:
    def __init__(self) -> None:
        # Unix socket paths are limited to 108 bytes: pytest's tmp_path may be longer.
        self.path = Path(tempfile.mkdtemp(prefix="engine-link-", dir="/tmp")) / "docker.sock"
        self.stall_posts = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(32)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="engine-link", daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(ENGINE_SOCKET)
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, requests: bool) -> None:
        stalled = False
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                stalled = stalled or (requests and self.stall_posts.is_set() and data.startswith(b"POST "))
                if not stalled:
                    target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked reading it
                sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()
