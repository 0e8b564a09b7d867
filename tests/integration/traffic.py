"""HTTP through Traefik for routing tests and benchmarks: parse the demo service's answer, loop requests."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx


def body_fields(text: str) -> dict[str, str]:
    """``tenant=acme service=a version=1 replica=0 host=...`` → a dict."""
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


class LoadLoop:
    """A client looping GETs for one host through Traefik in a thread, counting every answer.

    A request counts as failed when it raises (connection error, timeout) or answers anything but 200.
    Failures keep their time (seconds since start) and cause, for the test's printout.
    """

    def __init__(self, web_url: str, host: str, timeout: float = 5.0) -> None:
        self.web_url, self.host, self.timeout = web_url, host, timeout
        self.ok = 0
        self.failed: list[tuple[float, str]] = []
        self.versions: Counter[str] = Counter()
        self.replicas: Counter[str] = Counter()
        self.last_ok: dict[str, str] = {}
        self._started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load {host}", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.web_url, trust_env=False, timeout=self.timeout) as client:
            while not self._stop.is_set():
                try:
                    response = client.get("/", headers={"Host": self.host})
                except httpx.HTTPError as exc:
                    self.failed.append((time.monotonic() - self._started, f"{type(exc).__name__}: {exc}"))
                    continue
                if response.status_code != 200:
                    self.failed.append((time.monotonic() - self._started, f"HTTP {response.status_code}"))
                    continue
                fields = body_fields(response.text)
                self.ok += 1
                self.versions[fields.get("version", "?")] += 1
                self.replicas[f"{fields.get('version', '?')}/{fields.get('replica', '?')}"] += 1
                self.last_ok = fields

    @property
    def total(self) -> int:
        return self.ok + len(self.failed)

    def summary(self) -> str:
        share = len(self.failed) / self.total if self.total else 0.0
        counts = f"{self.total} requests, {self.ok} ok, {len(self.failed)} failed ({share:.2%})"
        return f"{counts}, versions {dict(self.versions)}"

    def start(self) -> LoadLoop:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)

    def __enter__(self) -> LoadLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
