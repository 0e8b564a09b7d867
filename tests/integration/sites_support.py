"""Support for the Nginx sites tests: our own Nginx (driver-started, free 127.0.0.1 port), site rows, HTTP calls
from a chosen source address, and a counting upstream."""

from __future__ import annotations

import http.client
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.engine import Engine

from deploy.devstack import free_port
from desired_state.database import make_engine, upgrade
from desired_state.site_tables import Site
from reconciler.core.policies import MassDeleteLimits
from reconciler.drivers.nginx import NginxDriver
from reconciler.runtime.passes.sites_step import SiteMetrics, SitesStep
from reconciler.runtime.telemetry.metrics import Metrics
from renderers.nginx import NginxLayout


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def get(port: int, host: str, path: str = "/", *, source: str = "127.0.0.1", cookie: str | None = None) -> Reply:
    """One request on a fresh connection (no keep-alive), from ``source`` (127.0.0.2 for a denied client)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        headers = {"Host": host, "Connection": "close"}
        if cookie:
            headers["Cookie"] = cookie
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        headers_seen: dict[str, str] = {}
        for key, value in response.getheaders():  # repeated headers joined, as HTTP defines them
            headers_seen[key.lower()] = (
                f"{headers_seen[key.lower()]}, {value}" if key.lower() in headers_seen else value
            )
        return Reply(response.status, headers_seen, response.read())
    finally:
        connection.close()


@dataclass
class Upstream:
    """A plain HTTP server on 127.0.0.1 that counts the requests it gets, by path."""

    port: int
    hits: dict[str, int] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @staticmethod
    def start() -> Upstream:
        upstream = Upstream(port=0)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.hits[self.path] = upstream.hits.get(self.path, 0) + 1
                body = f"upstream {self.path} host={self.headers.get('Host')}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        upstream.server, upstream.port = server, server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return upstream

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class SitesRig:
    engine: Engine
    step: SitesStep
    driver: NginxDriver
    layout: NginxLayout
    port: int
    root: Path

    @property
    def static_root(self) -> Path:
        return Path(self.layout.static_root)

    def add(self, name: str, kind: str, host: str, options: Mapping[str, Any] | None = None, **columns: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(Site).values(name=name, kind=kind, host=host, options=dict(options or {}), **columns)
            )

    def change(self, name: str, **columns: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(Site).where(Site.name == name).values(generation=Site.generation + 1, **columns))

    def remove(self, name: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(Site).where(Site.name == name))

    def metric(self, name: str, **labels: str) -> float | None:
        assert self.step.metrics is not None
        value: float | None = self.step.metrics.registry.get_sample_value(name, labels)
        return value

    def get(self, host: str, path: str = "/", **kwargs: Any) -> Reply:
        return get(self.port, host, path, **kwargs)


def sites_rig(database_url: str, owner: str) -> Iterator[SitesRig]:
    """A migrated database, our own Nginx under a fresh state dir (0755 so Nginx's workers, which drop root,
    can read it) listening on a free 127.0.0.1 port, and the sites stage wired to both; Nginx stopped after."""
    root = Path(tempfile.mkdtemp(prefix="sites-"))
    root.chmod(0o755)
    (root / "static").mkdir(mode=0o755)
    upgrade(database_url)
    engine = make_engine(database_url)
    port = free_port()
    layout = NginxLayout(
        listen=f"127.0.0.1:{port}",
        prefix=owner,
        owner=owner,
        state_dir=str(root / "nginx"),
        static_root=str(root / "static"),
    )
    driver = NginxDriver(Path(layout.state_dir), owner)
    step = SitesStep(engine, driver, layout, MassDeleteLimits(), SiteMetrics(Metrics()))
    try:
        yield SitesRig(engine, step, driver, layout, port, root)
    finally:
        driver.stop()
        engine.dispose()
        shutil.rmtree(root, ignore_errors=True)
