"""The Docker driver's connection to the engine: its clients, their timeouts, and the count of calls made.

Below every part of ``DockerDriver`` (``drivers.docker.driver``), which is built on ``DockerConnection`` through
``drivers.docker.observe`` and the ``*_actions`` modules; the runtime makes one driver per process (``wiring``).
Two Engine API clients on the same socket: ``api`` for reads, bounded by ``DockerTimeouts.api``, and ``engine`` for
mutations, bounded by ``DockerTimeouts.mutation``. The CLI clients (python-on-whales, for pulls and helper
containers) are made on first use; every CLI call but a helper's runs under ``timeout``. Every call is counted by
kind (``calls``: list, inspect, read, mutate), which tests and ``bench/`` read.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import requests.exceptions

from reconciler.core.errors import TransientError
from reconciler.drivers.docker.errors import ApiMutation, Mutation, docker_error
from reconciler.drivers.docker.inspect import InspectionMarks

if TYPE_CHECKING:
    # python-on-whales (with rich, click, pygments) only for pulls, helpers and events: imported on first use,
    # so a one-shot command whose pass mutates nothing never loads it (docs/benchmarks.md, "CLI start").
    from python_on_whales import DockerClient

# Seconds `timeout` waits after TERM before it KILLs a CLI call that ran past its bound.
KILL_AFTER = 5
# Connections the SDK keeps open per pool (it keeps one pool per request URL): the same request made at once by
# the executor's workers (about 8) and the loop (observations, the event stream holding one while open) needs
# that many; with fewer, each extra one is opened, then thrown away with a warning.
POOL_SIZE = 16


@dataclass(frozen=True)
class DockerTimeouts:
    """Upper bounds, in seconds, of one Docker call (``Settings.docker_*_timeout``)."""

    api: float = 60.0  # one docker SDK request (list, inspect, logs)
    mutation: float = 120.0  # one mutation (create, start, stop, rm, update, network, volume); stop adds its grace
    pull: float = 600.0  # one image pull
    events_read: float = 60.0  # the event stream is reopened after this long without an event


def _bounded(docker_cmd: list[str], seconds: float) -> list[str]:
    return ["timeout", "--kill-after", str(KILL_AFTER), f"{seconds:g}", *docker_cmd]


class DockerConnection:
    def __init__(
        self,
        owner: str,
        docker_host: str | None = None,
        client_call: list[str] | None = None,
        *,
        timeouts: DockerTimeouts | None = None,
        pull: str = "missing",
        inspections: InspectionMarks | None = None,
    ) -> None:
        self.owner = owner
        self.timeouts = timeouts or DockerTimeouts()
        # "missing": pull an image the engine lacks (bounded by the pull timeout); "never": a missing image is a
        # permanent error at once (nodes that cannot reach a registry).
        self.pull = pull
        self.inspections = inspections if inspections is not None else InspectionMarks()
        base_url = docker_host or "unix:///var/run/docker.sock"
        self.api = docker.APIClient(
            base_url=base_url, version="auto", timeout=self.timeouts.api, max_pool_size=POOL_SIZE
        )
        # Mutations get their own bound; the API version is the one just negotiated (no second round trip).
        self.engine = docker.APIClient(
            base_url=base_url, version=self.api.api_version, timeout=self.timeouts.mutation, max_pool_size=POOL_SIZE
        )
        self._docker_host = docker_host
        self._client_call = client_call or ["docker"]
        # Counted by kind so tests and bench/ can show a no-op pass makes only reads.
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    # Helpers bring their own timeout (a backup may take an hour); every other CLI call gets a bound.
    @cached_property
    def helper_cli(self) -> DockerClient:
        return self._docker_cli(self._client_call)

    @cached_property
    def cli(self) -> DockerClient:
        return self._docker_cli(_bounded(self._client_call, self.timeouts.mutation))

    @cached_property
    def pull_cli(self) -> DockerClient:
        return self._docker_cli(_bounded(self._client_call, self.timeouts.pull))

    def _docker_cli(self, call: list[str]) -> DockerClient:
        from python_on_whales import DockerClient

        return DockerClient(host=self._docker_host, client_call=call)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1

    @property
    def mutations(self) -> int:
        return self.calls["mutate"]

    def _api_error(self, exc: Exception, operation: str, key: str) -> TransientError:
        error = docker_error(
            f"{operation} {key} failed: {exc}", permanent=False, operation=operation, key=key, tenant=None
        )
        assert isinstance(error, TransientError)
        return error

    def _list(self, call: str, **kwargs: Any) -> Any:
        self._count("list")
        try:
            return getattr(self.api, call)(**kwargs)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise self._api_error(exc, "list", call) from exc

    def _mutate(self, operation: str, key: str, tenant: str | None, timeout: float | None = None) -> Mutation:
        """One CLI mutation (pull, helper)."""
        self._count("mutate")
        return Mutation(operation, key, tenant, timeout or self.timeouts.mutation)

    def _request(self, operation: str, key: str, tenant: str | None, timeout: float | None = None) -> ApiMutation:
        """One Engine API mutation (``self.engine``)."""
        self._count("mutate")
        return ApiMutation(operation, key, tenant, timeout or self.timeouts.mutation)
