"""Docker driver: observe with the docker SDK, act with python-on-whales.

Observation is one snapshot per pass with a constant number of list calls (containers, networks, volumes),
whatever the number of tenants; the results are converted at once into the core's frozen values. Mutations go
through python-on-whales, one call per change. Library errors become ``TransientError`` or ``PermanentError``.
Called by the runtime's executor and event watcher only.
"""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any, BinaryIO, Literal

import docker
import docker.errors
import requests.exceptions
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException, NoSuchContainer, NoSuchImage, NoSuchNetwork, NoSuchVolume

from reconciler.core.errors import PermanentError, TransientError
from reconciler.core.resources import (
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_REPLICA,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    LABEL_TENANT,
    LABEL_TRACK,
    Container,
    Network,
    Snapshot,
    Volume,
)
from renderers.containers import DATA_MOUNT

log = logging.getLogger(__name__)

# Seconds a container gets to stop gracefully before SIGKILL; a service that needs longer is misbehaving.
STOP_TIMEOUT = 10
# Helper containers (backup, restore, migration): bytes read per chunk from their output, and how much of their
# text output is kept (the end of it: that is where a failing command says why).
HELPER_CHUNK = 64 * 1024
HELPER_OUTPUT_LIMIT = 256 * 1024
# Exit status of `docker run` when the daemon could not run the container at all (the command never ran).
DOCKER_RUN_FAILED = 125
_HEALTH_RE = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_PERMANENT_HINTS = (
    "No such image",
    "manifest unknown",
    "pull access denied",
    "invalid reference format",
    "Minimum memory limit",
    "Range of CPUs",
    "invalid argument",
)


class SubnetTaken(TransientError):
    """The chosen subnet was taken meanwhile (another network created since the snapshot)."""


@dataclass(frozen=True)
class DockerEvent:
    kind: str  # container | network
    action: str  # die, destroy, stop, oom, start, health_status: unhealthy, ...
    tenant: str | None
    name: str
    attributes: dict[str, str]


def _label_filter(owner: str, *extra: str) -> dict[str, list[str]]:
    return {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={owner}", *extra]}


def _translate(exc: Exception, what: str, tenant: str | None) -> Exception:
    text = str(exc)
    if isinstance(exc, NoSuchImage) or any(hint in text for hint in _PERMANENT_HINTS):
        return PermanentError(f"{what}: {text.strip()}", tenant=tenant)
    return TransientError(f"{what}: {text.strip()}", tenant=tenant)


class DockerDriver:
    def __init__(self, owner: str, docker_host: str | None = None, client_call: list[str] | None = None) -> None:
        self.owner = owner
        base_url = docker_host or "unix:///var/run/docker.sock"
        self.api = docker.APIClient(base_url=base_url, version="auto", timeout=60)
        self.cli = (
            DockerClient(host=docker_host, client_call=client_call) if client_call else DockerClient(host=docker_host)
        )
        # Counted by kind so tests and bench/ can show a no-op pass makes only reads.
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1

    @property
    def mutations(self) -> int:
        return self.calls["mutate"]

    # --- observe -------------------------------------------------------------------------------------------

    def ping(self) -> None:
        try:
            self.api.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise TransientError(f"Docker engine not reachable: {exc}") from exc

    def _list(self, call: str, **kwargs: Any) -> Any:
        self._count("list")
        try:
            return getattr(self.api, call)(**kwargs)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise TransientError(f"Docker {call} list failed: {exc}") from exc

    def _container_from_api(self, raw: dict[str, Any]) -> Container:
        labels = raw.get("Labels") or {}
        networks = (raw.get("NetworkSettings") or {}).get("Networks") or {}
        tenant = labels.get(LABEL_TENANT, "")
        network_name = next((n for n in networks if n.endswith(f"-{tenant}")), next(iter(networks), ""))
        health = _HEALTH_RE.search(raw.get("Status") or "")
        try:
            replica = int(labels.get(LABEL_REPLICA, "-1"))
        except ValueError:
            replica = -1
        return Container(
            name=(raw.get("Names") or ["/?"])[0].lstrip("/"),
            tenant=tenant,
            service=labels.get(LABEL_SERVICE, "?"),
            replica=replica,
            image=raw.get("Image", ""),
            spec_hash=labels.get(LABEL_SPEC_HASH, ""),
            network=network_name,
            volume="",
            port=0,
            state=raw.get("State", "unknown"),
            labels=tuple(sorted(labels.items())),
            track=labels.get(LABEL_TRACK, ""),
            id=raw.get("Id"),
            ip=(networks.get(network_name) or {}).get("IPAddress") or None,
            networks=tuple(sorted(networks)),
            health_status=health.group(1).replace("health: ", "") if health else None,
        )

    def observe(self, tenant: str | None = None) -> Snapshot:
        """One snapshot: 3 list calls, whatever the number of tenants (or of one tenant's objects)."""
        extra = (f"{LABEL_TENANT}={tenant}",) if tenant else ()
        containers = self._list("containers", all=True, filters=_label_filter(self.owner, *extra))
        networks = self._list("networks")
        volumes = self._list("volumes", filters=_label_filter(self.owner, *extra))
        owned_networks = []
        used_subnets = []
        for raw in networks:
            for config in (raw.get("IPAM") or {}).get("Config") or []:
                if config.get("Subnet"):
                    used_subnets.append(config["Subnet"])
            labels = raw.get("Labels") or {}
            if labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_OWNER) != self.owner:
                continue
            if tenant and labels.get(LABEL_TENANT) != tenant:
                continue
            subnets = [c.get("Subnet") for c in (raw.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]
            owned_networks.append(
                Network(
                    name=raw["Name"],
                    tenant=labels.get(LABEL_TENANT, ""),
                    subnet=subnets[0] if subnets else None,
                    id=raw.get("Id"),
                )
            )
        owned_volumes = [
            Volume(name=raw["Name"], tenant=(raw.get("Labels") or {}).get(LABEL_TENANT, ""))
            for raw in (volumes or {}).get("Volumes") or []
        ]
        return Snapshot(
            containers=tuple(sorted((self._container_from_api(c) for c in containers), key=lambda c: c.name)),
            networks=tuple(sorted(owned_networks, key=lambda n: n.name)),
            volumes=tuple(sorted(owned_volumes, key=lambda v: v.name)),
            used_subnets=tuple(sorted(used_subnets)),
        )

    def container(self, name: str) -> Container | None:
        """Re-read one container (after creating or starting it, to learn its address)."""
        found = self._list("containers", all=True, filters={"name": [f"^/{name}$"]})
        return self._container_from_api(found[0]) if found else None

    def logs(self, name: str, tail: int = 20) -> str:
        self._count("read")
        try:
            raw = self.api.logs(name, tail=tail, stdout=True, stderr=True)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return ""
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

    def events(self, stop: threading.Event) -> Iterator[DockerEvent]:
        """Container and network events of our objects; ends when the stream breaks or ``stop`` is set."""
        try:
            stream = self.api.events(decode=True, filters={"type": ["container", "network"]})
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise TransientError(f"Docker events stream failed: {exc}") from exc
        try:
            for raw in stream:
                if stop.is_set():
                    return
                attributes = (raw.get("Actor") or {}).get("Attributes") or {}
                kind = raw.get("Type", "")
                if kind == "container" and (
                    attributes.get(LABEL_MANAGED) != "true" or attributes.get(LABEL_OWNER) != self.owner
                ):
                    continue
                yield DockerEvent(
                    kind=kind,
                    action=raw.get("Action") or raw.get("status") or "",
                    tenant=attributes.get(LABEL_TENANT),
                    name=attributes.get("name", ""),
                    attributes=attributes,
                )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise TransientError(f"Docker events stream broke: {exc}") from exc
        finally:
            stream.close()

    # --- act -----------------------------------------------------------------------------------------------

    def _mutate(self, what: str, tenant: str | None) -> _Mutation:
        self._count("mutate")
        return _Mutation(what, tenant)

    def used_subnets(self) -> list[str]:
        """Every subnet the engine has in use, ours or not (one list call)."""
        return [
            config["Subnet"]
            for raw in self._list("networks")
            for config in (raw.get("IPAM") or {}).get("Config") or []
            if config.get("Subnet")
        ]

    def create_network(self, network: Network, labels: dict[str, str]) -> None:
        try:
            self._create_network(network, labels)
        except TransientError as exc:
            if "overlaps" in str(exc):
                raise SubnetTaken(str(exc), tenant=network.tenant) from exc
            raise

    def _create_network(self, network: Network, labels: dict[str, str]) -> None:
        with self._mutate(f"create network {network.name}", network.tenant):
            self.cli.network.create(
                network.name,
                driver="bridge",
                subnet=network.subnet,
                labels=labels,
            )

    def remove_network(self, network: Network) -> None:
        with self._mutate(f"remove network {network.name}", network.tenant), contextlib.suppress(NoSuchNetwork):
            self.cli.network.remove(network.name)

    def create_volume(self, volume: Volume, labels: dict[str, str]) -> None:
        with self._mutate(f"create volume {volume.name}", volume.tenant):
            self.cli.volume.create(volume.name, labels=labels)

    def remove_volume(self, name: str, tenant: str) -> None:
        with self._mutate(f"remove volume {name}", tenant), contextlib.suppress(NoSuchVolume):
            self.cli.volume.remove(name)

    def run_container(self, container: Container) -> None:
        check: dict[str, Any] = {}
        if container.healthcheck is not None:
            hc = container.healthcheck
            check = {
                "health_cmd": hc.command,
                "health_interval": timedelta(seconds=hc.interval),
                "health_timeout": timedelta(seconds=hc.timeout),
                "health_retries": hc.retries,
                "health_start_period": timedelta(seconds=hc.start_period),
            }
        with self._mutate(f"run container {container.name}", container.tenant):
            self.cli.container.run(
                container.image,
                name=container.name,
                detach=True,
                labels=dict(container.labels),
                envs=dict(container.env or ()),
                memory=container.memory,
                cpus=container.cpus,
                networks=[container.network],
                volumes=[(container.volume, DATA_MOUNT)],
                restart="unless-stopped",
                **check,
            )

    def start_container(self, container: Container) -> None:
        with self._mutate(f"start container {container.name}", container.tenant):
            self.cli.container.start(container.name)

    def stop_container(self, container: Container) -> None:
        with self._mutate(f"stop container {container.name}", container.tenant), contextlib.suppress(NoSuchContainer):
            self.cli.container.stop(container.name, time=STOP_TIMEOUT)

    def remove_container(self, container: Container) -> None:
        """Stop gracefully, then remove; the data volume is untouched."""
        with self._mutate(f"remove container {container.name}", container.tenant):
            try:
                if container.running:
                    self.cli.container.stop(container.name, time=STOP_TIMEOUT)
                self.cli.container.remove(container.name, force=True)
            except NoSuchContainer:
                pass

    def run_oneoff(
        self,
        image: str,
        command: list[str],
        *,
        name: str,
        network: str,
        volume: str,
        labels: dict[str, str],
        env: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """Run a short-lived helper container to completion; returns its exit code and output."""
        with self._mutate(f"run one-off {name}", labels.get(LABEL_TENANT)):
            try:
                output = self.cli.container.run(
                    image,
                    command,
                    name=name,
                    remove=True,
                    labels=labels,
                    envs=env or {},
                    networks=[network] if network else [],
                    volumes=[(volume, DATA_MOUNT)],
                )
                return 0, str(output)
            except DockerException as exc:
                if any(hint in str(exc) for hint in _PERMANENT_HINTS):
                    raise
                return exc.return_code, (exc.stdout or "") + (exc.stderr or "")

    def run_helper(
        self,
        image: str,
        command: list[str],
        *,
        name: str,
        volume: str,
        labels: dict[str, str],
        timeout: float,
        network: str | None = None,
        env: dict[str, str] | None = None,
        read_only: bool = False,
        stdin: BinaryIO | None = None,
        stdout: Callable[[bytes], None] | None = None,
    ) -> HelperResult:
        """Run a short-lived container with ``volume`` at /data to completion, streaming bytes in and out.

        ``stdin`` (an open binary file) is fed to the command; with ``stdout`` every chunk the command writes goes
        to that callback (an archive), otherwise it is collected as text with stderr. The container runs with
        ``--rm``, no log driver (an archive streamed out must not also land in a log file) and, without
        ``network``, no network at all. Give it labels *without* the managed label, so the snapshot never sees it.
        Past ``timeout`` the container is removed and ``TransientError`` raised; Docker's own failure to run it
        (no such image, ...) is raised as the project's error; the command's exit code is returned otherwise.
        """
        argv: list[str] = [*self.cli.client_config.docker_cmd, "run", "--rm", "--name", name, "--log-driver", "none"]
        argv += ["--network", network or "none", "--volume", f"{volume}:{DATA_MOUNT}{':ro' if read_only else ''}"]
        for key, value in sorted(labels.items()):
            argv += ["--label", f"{key}={value}"]
        for key, value in sorted((env or {}).items()):
            argv += ["--env", f"{key}={value}"]
        if stdin is not None:
            argv.append("--interactive")
        argv += [image, *command]
        tenant = labels.get(LABEL_TENANT)
        self._count("mutate")
        log.debug("tenant=%s helper %s: %s", tenant, name, " ".join(command))
        process = subprocess.Popen(
            argv,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        errors = _Tail(process.stderr)
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            self._remove_helper(name)
            process.kill()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        collected = bytearray()
        try:
            for chunk in iter(lambda: process.stdout.read(HELPER_CHUNK), b""):  # type: ignore[union-attr]
                if stdout is not None:
                    stdout(chunk)
                elif len(collected) < HELPER_OUTPUT_LIMIT:
                    collected += chunk
            code = process.wait()
        except BaseException:
            # The consumer failed (disk full, interrupted): the helper must not outlive us.
            self._remove_helper(name)
            process.kill()
            process.wait()
            raise
        finally:
            timer.cancel()
            errors.join()
        output = (bytes(collected) + errors.data).decode(errors="replace")
        if timed_out.is_set():
            raise TransientError(f"helper {name} did not finish within {timeout:g}s and was removed", tenant=tenant)
        if code == DOCKER_RUN_FAILED:
            # `docker run` itself failed (daemon error, image missing): the command never ran.
            message = f"helper {name} could not run: {output.strip()}"
            if any(hint in output for hint in _PERMANENT_HINTS) or "Unable to find image" in output:
                raise PermanentError(message, tenant=tenant)
            raise TransientError(message, tenant=tenant)
        return HelperResult(exit_code=code, output=output)

    def helpers(self, labels: dict[str, str], name_prefix: str = "") -> list[tuple[str, str]]:
        """(name, state) of the containers carrying all ``labels`` (helpers: no managed label), one list call.

        Used before a migration: a helper of an earlier migration that still exists may still be running it.
        """
        filters = {"label": [f"{key}={value}" for key, value in sorted(labels.items())]}
        found = self._list("containers", all=True, filters=filters)
        named = [((raw.get("Names") or ["/?"])[0].lstrip("/"), str(raw.get("State", "unknown"))) for raw in found]
        return sorted((name, state) for name, state in named if name.startswith(name_prefix))

    def _remove_helper(self, name: str) -> None:
        with contextlib.suppress(DockerException):
            self.cli.container.remove(name, force=True)


class _Mutation:
    """Context manager that turns python-on-whales errors into the project's error types."""

    def __init__(self, what: str, tenant: str | None) -> None:
        self.what = what
        self.tenant = tenant

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None or not isinstance(exc, DockerException):
            return False
        raise _translate(exc, self.what, self.tenant) from exc


@dataclass(frozen=True)
class HelperResult:
    exit_code: int
    output: str  # stderr, and stdout when it was not streamed to a callback

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class _Tail:
    """Reads a pipe to the end on a thread, keeping the last ``HELPER_OUTPUT_LIMIT`` bytes."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._data = bytearray()
        self._thread = threading.Thread(target=self._read, name="helper-stderr", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for chunk in iter(lambda: self._pipe.read(HELPER_CHUNK), b""):
            self._data += chunk
            del self._data[:-HELPER_OUTPUT_LIMIT]

    def join(self) -> None:
        self._thread.join()

    @property
    def data(self) -> bytes:
        return bytes(self._data)
