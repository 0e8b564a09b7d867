"""The HTTP API really served: uvicorn on a free 127.0.0.1 port in a thread of the test process, over a fresh
PostgreSQL database, with one account of each role. Used by the API tests (``test_api*.py``)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine

from desired_state.access import create_token
from desired_state.database import make_engine, upgrade
from reconciler.api.app import create_app
from reconciler.runtime.settings import Settings
from tests.integration.runs import free_port

CATALOG = (
    "catalog:\n"
    '  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.1, public: true}\n'
    '  b: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.1}\n'
)
# The console accounts' password (``create_token(..., password=PASSWORD)``).
PASSWORD = "correct horse battery"


@dataclass
class Api:
    base: str
    engine: Engine
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None = "operator") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """``create_app(settings)`` served by uvicorn on a free port until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def api_server(database_url: str, owner: str, **extra: Any) -> Iterator[Api]:
    upgrade(database_url)
    settings = Settings(database_url=database_url, owner_id=owner, name_prefix=owner, usage_interval=0, **extra)
    engine = make_engine(database_url)
    tokens = {role: create_token(engine, role, role)[1] for role in ("viewer", "operator", "admin")}
    try:
        with served(settings) as base:
            yield Api(base=base, engine=engine, settings=settings, tokens=tokens)
    finally:
        engine.dispose()


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token of a console page's forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


@contextmanager
def console_login(api: Api, name: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A browser-like client logged in to the console as account ``name`` (made with ``password``)."""
    with httpx.Client(base_url=api.base, timeout=60) as browser:
        form = browser.get("/login")
        answer = browser.post("/login", data={"csrf": csrf_of(form), "name": name, "password": password})
        assert answer.status_code == 303 and answer.headers["location"] == "/tenants", answer.text[:300]
        yield browser
