"""Shared fixtures for the real local stack (see deploy/devstack.py) and the Docker engine.

Services are started lazily (only when a test asks for them), once per session, on free 127.0.0.1
ports, so several sessions can run on one machine at once. A service that cannot be started, or a
Docker engine that does not answer, makes the test FAIL with the reason; it is never skipped.

Docker objects: the reconciler labels what it creates with ``tenant-reconciler.managed=true`` and
``tenant-reconciler.owner=<owner id>``. A test that uses both ``owner_id`` and ``docker_client`` gets
every container, network and volume labelled with its own owner id removed before and after it runs.
Nothing is ever cleaned up by any other label: other sessions use other owner ids.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "deploy"))

import devstack  # noqa: E402

OWNER_LABEL = "tenant-reconciler.owner"
SERVICE_FIXTURES = ("postgres_cluster", "powerdns", "traefik", "rabbitmq", "prometheus", "node_exporter")

S = TypeVar("S", bound=devstack.Service)


def _start_or_fail(service: S) -> S:
    try:
        service.start()
    except Exception as exc:
        pytest.fail(f"{service.name} could not be started: {exc}", pytrace=False)
    return service


def _session_service(service: S) -> Iterator[S]:
    _start_or_fail(service)
    try:
        yield service
    finally:
        service.stop()


# --------------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Postgres]:
    """A PostgreSQL 15 cluster for the whole session, on a free port, removed at the end."""
    pg = devstack.Postgres(tmp_path_factory.mktemp("postgres"))
    _start_or_fail(pg)
    try:
        yield pg
    finally:
        pg.remove()


@pytest.fixture
def postgres_url(postgres_cluster: devstack.Postgres) -> Iterator[str]:
    """URL of a fresh, empty database (unique name) on the session cluster; dropped afterwards."""
    try:
        url = postgres_cluster.create_database()
    except Exception as exc:
        pytest.fail(f"could not create a PostgreSQL database: {exc}", pytrace=False)
    yield url
    postgres_cluster.drop_database(url.rsplit("/", 1)[1])


# --------------------------------------------------------------------------------------------- other services


@pytest.fixture(scope="session")
def powerdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.PowerDNS]:
    """PowerDNS: .host/.dns_port (DNS), .api_url, .api_key; stop()/start()/restart() keep ports and data."""
    yield from _session_service(devstack.PowerDNS(tmp_path_factory.mktemp("powerdns")))


@pytest.fixture(scope="session")
def traefik(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Traefik]:
    """Traefik v3: .web_url (entrypoint `web`), .api_url (API and /ping), .dynamic_dir (file provider, watched)."""
    yield from _session_service(devstack.Traefik(tmp_path_factory.mktemp("traefik")))


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.RabbitMQ]:
    """RabbitMQ: .url (amqp://guest:guest@127.0.0.1:PORT/%2F), .port; stop()/start() keep node and queues."""
    yield from _session_service(devstack.RabbitMQ(tmp_path_factory.mktemp("rabbitmq")))


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Prometheus]:
    """Prometheus: .url; .reload(config_text) loads a new config (scrape interval 1 s by default)."""
    yield from _session_service(devstack.Prometheus(tmp_path_factory.mktemp("prometheus")))


@pytest.fixture(scope="session")
def node_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.NodeExporter]:
    """Debian's node exporter (memory and CPU collectors): .address, .scrape_job() for a Prometheus config."""
    yield from _session_service(devstack.NodeExporter(tmp_path_factory.mktemp("node_exporter")))


@pytest.fixture(autouse=True)
def _restart_stopped_services(request: pytest.FixtureRequest) -> None:
    """A test that stopped a shared service (PowerDNS, RabbitMQ...) and failed must not break the next one."""
    for name in SERVICE_FIXTURES:
        if name in request.fixturenames:
            service = request.getfixturevalue(name)
            if not service.running():
                _start_or_fail(service)


# --------------------------------------------------------------------------------------------- Docker


class DemoImages(NamedTuple):
    v1: str
    v2: str
    busybox: str


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """docker SDK client (``docker.from_env()``) for an engine that answers ping."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        pytest.fail(f"the Docker engine does not answer: {exc}", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def demo_images(docker_client: Any) -> DemoImages:
    """Builds erp/demo-svc:1, erp/demo-svc:2 and erp/busybox:local once (a no-op when they are current)."""
    script = REPO_ROOT / "deploy" / "images" / "build.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.fail(f"{script} failed ({result.returncode}):\n{result.stdout}{result.stderr}", pytrace=False)
    return DemoImages(v1="erp/demo-svc:1", v2="erp/demo-svc:2", busybox="erp/busybox:local")


@pytest.fixture
def owner_id() -> str:
    """An owner id unique to this test (``t<8 hex>``), for ``tenant-reconciler.owner`` labels."""
    return f"t{secrets.token_hex(4)}"


def remove_owned_docker_objects(client: Any, owner: str) -> None:
    """Remove containers, then networks, then volumes labelled ``tenant-reconciler.owner=<owner>``. Only those."""
    if not owner:
        raise ValueError("refusing to clean up without an owner id")
    label = {"label": [f"{OWNER_LABEL}={owner}"]}
    for container in client.containers.list(all=True, filters=label):
        try:
            container.remove(force=True)
        except Exception as exc:
            if "No such container" not in str(exc) and "already in progress" not in str(exc):
                raise
    for network in client.networks.list(filters=label):
        try:
            network.reload()
            # a container that is not ours may still be attached to our network: detach it, never remove it
            for container_id in network.attrs.get("Containers") or {}:
                network.disconnect(container_id, force=True)
            network.remove()
        except Exception as exc:
            if "not found" not in str(exc).lower():
                raise
    for volume in client.volumes.list(filters=label):
        try:
            volume.remove(force=True)
        except Exception as exc:
            if "no such volume" not in str(exc).lower():
                raise


@pytest.fixture
def docker_cleanup(docker_client: Any, owner_id: str) -> Callable[[], None]:
    """Call it to remove this test's Docker objects now (it also runs before and after the test)."""
    return lambda: remove_owned_docker_objects(docker_client, owner_id)


@pytest.fixture(autouse=True)
def _clean_owned_docker_objects(request: pytest.FixtureRequest) -> Iterator[None]:
    """Before and after a test that uses both ``owner_id`` and ``docker_client``: remove that owner's objects."""
    if not {"owner_id", "docker_client"} <= set(request.fixturenames):
        yield
        return
    client = request.getfixturevalue("docker_client")
    owner = request.getfixturevalue("owner_id")
    remove_owned_docker_objects(client, owner)
    yield
    remove_owned_docker_objects(client, owner)
