"""A stand-in for Loki's query API, the one fake of the API tests: Loki is neither in Debian nor on PyPI, so it
cannot run here. It answers ``GET /loki/api/v1/query_range`` as Loki's HTTP API documents it (``query`` a plain
stream selector of ``label="value"`` matchers, ``start``/``end`` in nanoseconds, ``limit``, ``direction``;
``{"status": "success", "data": {"resultType": "streams", "result": [{"stream": ..., "values": [[ns, line]]}]}}``)
over the lines a test pushes, and keeps every query it was asked for the test to read. Anything else is a 400.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SELECTOR = re.compile(r'^\{\s*(?:\w+\s*=\s*"(?:[^"\\]|\\.)*"\s*,?\s*)+\}$')
MATCHER = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass
class FakeLoki:
    url: str = ""
    lines: list[tuple[dict[str, str], int, str]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, labels: dict[str, str], text: str, ns: int | None = None) -> None:
        with self.lock:
            self.lines.append((labels, ns or time.time_ns(), text))

    def answer(self, params: dict[str, str]) -> dict[str, object] | None:
        logql = params.get("query", "")
        if not SELECTOR.match(logql):
            return None
        wanted = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in MATCHER.findall(logql)}
        start = int(params.get("start", time.time_ns() - 3600 * 10**9))
        end = int(params.get("end", time.time_ns()))
        limit = int(params.get("limit", 100))
        backward = params.get("direction", "backward").lower() == "backward"
        with self.lock:
            found = [
                (ns, labels, text)
                for labels, ns, text in self.lines
                if start <= ns < end and all(labels.get(k) == v for k, v in wanted.items())
            ]
        found.sort(key=lambda item: item[0], reverse=backward)
        streams: dict[str, dict[str, object]] = {}
        for ns, labels, text in found[:limit]:
            stream = streams.setdefault(json.dumps(labels, sort_keys=True), {"stream": labels, "values": []})
            values = stream["values"]
            assert isinstance(values, list)
            values.append([str(ns), text])
        return {"status": "success", "data": {"resultType": "streams", "result": list(streams.values())}}


@contextmanager
def fake_loki() -> Iterator[FakeLoki]:
    loki = FakeLoki()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            loki.queries.append(params)
            body = loki.answer(params) if parts.path == "/loki/api/v1/query_range" else None
            payload = json.dumps(body or {"status": "error", "error": "parse error"}).encode()
            self.send_response(200 if body else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    loki.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-loki", daemon=True)
    thread.start()
    try:
        yield loki
    finally:
        server.shutdown()
        server.server_close()
