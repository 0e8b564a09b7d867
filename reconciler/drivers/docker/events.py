"""The Docker event stream of our containers and of networks, with a read timeout and seamless reconnects.

An idle stream sends nothing, and a stream whose connection hangs looks the same; so every read waits at most
``read_timeout`` seconds, then the stream is reopened from the time of the last event seen (``since``), which
loses nothing. A stream that cannot be (re)opened or breaks raises ``TransientError``; the loop
(``runtime.service.loop``) reconnects with backoff. ``connected`` is told when a stream is open and when it is
not, so the loop's gauge reads 1 only while events can arrive.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from reconciler.core.resources import LABEL_MANAGED, LABEL_OWNER, LABEL_TENANT
from reconciler.drivers.docker.errors import docker_error

_READ_TIMEOUTS = (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)
_STREAM_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, urllib3.exceptions.HTTPError)


@dataclass(frozen=True)
class DockerEvent:
    kind: str  # container | network
    action: str  # die, destroy, stop, oom, start, update, health_status: unhealthy, disconnect, ...
    tenant: str | None
    name: str
    attributes: dict[str, str]


def _is_read_timeout(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, _READ_TIMEOUTS) or "Read timed out" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


class EventStream:
    def __init__(self, api: docker.APIClient, owner: str, read_timeout: float) -> None:
        self.api = api
        self.owner = owner
        self.read_timeout = read_timeout

    def _open(self, since: str) -> Any:
        params = {"filters": json.dumps({"type": ["container", "network"]}), "since": since}
        try:
            # docker-py's events() disables the read timeout; a stream without one can hang forever.
            response = self.api._get(self.api._url("/events"), params=params, stream=True, timeout=self.read_timeout)
            self.api._raise_for_status(response)
        except _STREAM_ERRORS as exc:
            raise docker_error(
                f"events stream could not be opened: {exc}",
                permanent=False,
                operation="events",
                key="/events",
                tenant=None,
            ) from exc
        return response

    def _event(self, raw: dict[str, Any]) -> DockerEvent | None:
        attributes = (raw.get("Actor") or {}).get("Attributes") or {}
        kind = raw.get("Type", "")
        if kind == "container" and (
            attributes.get(LABEL_MANAGED) != "true" or attributes.get(LABEL_OWNER) != self.owner
        ):
            return None
        return DockerEvent(
            kind=kind,
            action=raw.get("Action") or raw.get("status") or "",
            tenant=attributes.get(LABEL_TENANT),
            name=attributes.get("name", ""),
            attributes=attributes,
        )

    def events(self, stop: threading.Event, connected: Callable[[bool], None] | None = None) -> Iterator[DockerEvent]:
        """Events until ``stop`` is set (checked at least every ``read_timeout``) or the stream breaks."""
        since_ns = time.time_ns()
        try:
            while not stop.is_set():
                response = self._open(f"{since_ns // 10**9}.{since_ns % 10**9:09d}")
                if connected is not None:
                    connected(True)
                try:
                    for raw in self.api._stream_helper(response, decode=True):
                        if stop.is_set():
                            return
                        since_ns = max(since_ns, int(raw.get("timeNano") or 0))
                        event = self._event(raw)
                        if event is not None:
                            yield event
                    # The daemon closed the stream (restart): reopen from the last event.
                except _STREAM_ERRORS as exc:
                    if not _is_read_timeout(exc):
                        raise docker_error(
                            f"events stream broke: {exc}",
                            permanent=False,
                            operation="events",
                            key="/events",
                            tenant=None,
                        ) from exc
                finally:
                    response.close()
        finally:
            if connected is not None:
                connected(False)
