"""The Docker driver's container actions: run, start, update, stop and remove a container, and pull its image.

Part of apply, the pipeline's sixth stage: the executor (``runtime.passes.executor``) calls them through
``DockerDriver``, from several workers at once. Each is an HTTP request on the engine's socket (``engine``), a few
milliseconds, bounded by ``DockerTimeouts.mutation`` (a stop adds its grace period); what a create sends is built in
``drivers.docker.create``. An image pull goes through the CLI with its own bound. The single engine runs containers
only: a plan that asks it for a Swarm service is a bug, refused as permanent.
"""

from __future__ import annotations

import contextlib

from docker.errors import ImageNotFound, NotFound

from reconciler.core.errors import PermanentError
from reconciler.core.resources import Container
from reconciler.core.services import Service
from reconciler.drivers.docker.connection import DockerConnection
from reconciler.drivers.docker.create import container_create, container_limits

# Seconds a container gets to stop gracefully before SIGKILL; a service that needs longer is misbehaving.
STOP_TIMEOUT = 10


class ContainerActions(DockerConnection):
    """Containers and their images (``calls["mutate"]``: one per action, a run's two requests included)."""

    def pull_image(self, image: str, tenant: str | None = None) -> None:
        with self._mutate("pull image", image, tenant, self.timeouts.pull):
            self.pull_cli.image.pull(image, quiet=True)

    def run_container(self, container: Container) -> None:
        """Create and start the container (``docker run -d``); an image the engine lacks is pulled first
        (``pull="missing"``). A name still held by a container being removed fails with the engine's conflict
        ("... is already in use"), a transient error. Two requests, one ``mutate`` count."""
        with self._request("run container", container.name, container.tenant):
            options = container_create(self.engine, container)
            try:
                created = self.engine.create_container(**options)
            except ImageNotFound:
                if self.pull != "missing":
                    raise
                self.pull_image(container.image, container.tenant)
                created = self.engine.create_container(**options)
            # As with `docker run`, a container whose start fails stays created; the next pass sees it.
            self.engine.start(created["Id"])

    def update_container(self, container: Container) -> None:
        """Set memory, CPUs and pids limit in place (``docker update``): limits drifted, the spec did not."""
        with self._request("update container", container.name, container.tenant):
            url = self.engine._url("/containers/{0}/update", container.name)
            # The SDK's update_container knows neither NanoCpus nor PidsLimit; the endpoint does.
            self.engine._raise_for_status(self.engine._post_json(url, data=container_limits(container)))

    def create_service(self, service: Service) -> None:
        raise _no_services(service)

    def update_service(self, service: Service) -> None:
        raise _no_services(service)

    def remove_service(self, service: Service) -> None:
        raise _no_services(service)

    def start_container(self, container: Container) -> None:
        with self._request("start container", container.name, container.tenant):
            self.engine.start(container.name)

    def stop_container(self, container: Container) -> None:
        # The client adds the grace period to its own timeout, so the bound is mutation + STOP_TIMEOUT.
        with (
            self._request("stop container", container.name, container.tenant, self.timeouts.mutation + STOP_TIMEOUT),
            contextlib.suppress(NotFound),
        ):
            self.engine.stop(container.name, timeout=STOP_TIMEOUT)

    def remove_container(self, container: Container) -> None:
        """Stop gracefully, then remove (``force``); the data volume is untouched (never ``v=True``)."""
        bound = self.timeouts.mutation + STOP_TIMEOUT
        with self._request("remove container", container.name, container.tenant, bound), contextlib.suppress(NotFound):
            if container.running:
                self.engine.stop(container.name, timeout=STOP_TIMEOUT)
            self.engine.remove_container(container.name, force=True)


def _no_services(service: Service) -> PermanentError:
    # The single engine's plans never hold services (``PlanSettings.swarm`` is unset); a plan that does is a bug.
    return PermanentError(
        f"service {service.name}: the single Docker engine runs containers, not services (RECONCILER_ENGINE=swarm)",
        tenant=service.tenant,
        system="docker",
        operation="service",
        key=service.name,
    )
