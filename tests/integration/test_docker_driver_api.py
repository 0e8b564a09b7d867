"""Issue 12, H2: the Docker driver's mutations on the Engine API, against the real engine.

What the driver makes must read in ``docker inspect`` exactly as what ``docker run`` made (the reference below
is the CLI call the driver used to make); errors keep their classification and never quote env values; every call
is bounded; one driver is safe from several threads.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from python_on_whales import DockerClient

from reconciler.core.errors import PermanentError, ReconcileError, SubnetTaken, TransientError
from reconciler.core.resources import DATA_MOUNT, Container, HealthCheck, Network, Volume
from reconciler.drivers.docker import DockerDriver, DockerTimeouts
from tests.integration.engine_link import EngineLink

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
SECRET = "s3cr3t-value-never-in-messages"
CHECK = HealthCheck(command="wget -q -O- http://127.0.0.1:8080/health || exit 1", interval=5, timeout=2, start_period=4)
# Away from the reconciler's default pool (10.213.0.0/16) and the routing tests' (10.214.0.0/16).
TEST_POOL = ipaddress.ip_network("10.215.0.0/16")


class Tenant:
    """One tenant's network and volume for a test, made by the driver under test."""

    def __init__(self, driver: DockerDriver, owner: str, name: str = "acme") -> None:
        self.driver = driver
        self.owner = owner
        self.name = name
        self.labels = {
            "tenant-reconciler.managed": "true",
            "tenant-reconciler.owner": owner,
            "tenant-reconciler.tenant": name,
        }
        self.network = self._network(name)
        self.volume = Volume(name=f"{owner}-{name}-data", tenant=name)
        driver.create_volume(self.volume, self.labels)

    def _network(self, name: str) -> Network:
        """Created with a free subnet; another session may take the one picked first (as the executor allows)."""
        for attempt in range(3):
            network = Network(name=f"{self.owner}-{name}", tenant=name, subnet=free_subnet(self.driver, self.owner))
            try:
                self.driver.create_network(network, self.labels)
                return network
            except SubnetTaken:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def container(self, suffix: str, **changes: Any) -> Container:
        made = Container(
            name=f"{self.owner}-{self.name}-a-{suffix}",
            tenant=self.name,
            service="a",
            replica=0,
            image="erp/demo-svc:1",
            spec_hash="0" * 16,
            network=self.network.name,
            volume=self.volume.name,
            port=8080,
            env=(("ERP_TENANT", self.name), ("PASSWORD", SECRET), ("WITH_SPACES", "a b=c")),
            memory=32 * MIB,
            cpus=0.25,
            labels=tuple(sorted((self.labels | {"tenant-reconciler.service": "a"}).items())),
            healthcheck=CHECK,
            pids_limit=200,
            log_max_size="2m",
            log_max_file=3,
            no_new_privileges=True,
        )
        return replace(made, **changes)


def free_subnet(driver: DockerDriver, owner: str) -> str:
    """A /26 of the test pool no network uses, starting at a place derived from the owner id (fewer races with
    other sessions picking at the same moment)."""
    used = [ipaddress.ip_network(s) for s in driver.used_subnets()]
    candidates = list(TEST_POOL.subnets(new_prefix=26))
    start = int(hashlib.sha256(owner.encode()).hexdigest(), 16) % len(candidates)
    for candidate in candidates[start:] + candidates[:start]:
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise AssertionError("test pool exhausted")


def run_the_old_way(cli: DockerClient, container: Container) -> None:
    """The reference: the python-on-whales call the driver made before it moved to the Engine API."""
    check = container.healthcheck
    assert check is not None
    cli.container.run(
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
        pull="never",
        health_cmd=check.command,
        health_interval=timedelta(seconds=check.interval),
        health_timeout=timedelta(seconds=check.timeout),
        health_retries=check.retries,
        health_start_period=timedelta(seconds=check.start_period),
        pids_limit=container.pids_limit,
        log_driver="json-file",
        log_options=[f"max-size={container.log_max_size}", f"max-file={container.log_max_file}"],
        security_options=["no-new-privileges"],
    )


@pytest.fixture
def driver(owner_id: str, docker_client: Any, demo_images: Any) -> DockerDriver:
    return DockerDriver(owner_id)


@pytest.fixture
def tenant(driver: DockerDriver, owner_id: str) -> Tenant:
    return Tenant(driver, owner_id)


@pytest.fixture
def link() -> Iterator[EngineLink]:
    made = EngineLink()
    yield made
    made.close()


def _without(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in section.items() if key not in keys}


def test_containers_networks_volumes_read_in_inspect_as_the_cli_made_them(driver: DockerDriver, owner_id: str) -> None:
    new, old = Tenant(driver, owner_id, "acme"), Tenant(driver, owner_id, "acmecli")
    # The old way for the network and the volume too: `docker network create`, `docker volume create`.
    old_subnet = free_subnet(driver, owner_id + "cli")
    driver.remove_network(old.network)
    driver.remove_volume(old.volume.name, old.name)
    driver.cli.network.create(old.network.name, driver="bridge", subnet=old_subnet, labels=new.labels)
    driver.cli.volume.create(old.volume.name, labels=new.labels)

    calls = driver.mutations
    driver.run_container(new.container("api"))
    assert driver.mutations - calls == 1  # create + start: one mutation, as `docker run` was
    reference = new.container("cli")
    run_the_old_way(driver.cli, reference)

    made, wanted = driver.api.inspect_container(new.container("api").name), driver.api.inspect_container(reference.name)
    assert made["State"]["Running"] and wanted["State"]["Running"]
    assert made["HostConfig"] == wanted["HostConfig"]
    # Hostname is the container's own id; the CLI's env order follows a dict, ours the sorted spec.
    assert _without(made["Config"], "Hostname", "Env") == _without(wanted["Config"], "Hostname", "Env")
    assert sorted(made["Config"]["Env"]) == sorted(wanted["Config"]["Env"])
    assert made["Mounts"] == wanted["Mounts"]
    endpoint = {"IPAMConfig", "Links", "DriverOpts", "NetworkID"}
    assert {k: v for k, v in made["NetworkSettings"]["Networks"][new.network.name].items() if k in endpoint} == {
        k: v for k, v in wanted["NetworkSettings"]["Networks"][new.network.name].items() if k in endpoint
    }
    # The values we set, spelled out (so a change on both sides cannot pass unnoticed).
    host = made["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (32 * MIB, 64 * MIB, 25e7, 200)
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "2m"}}
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["RestartPolicy"] == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    assert host["Binds"] == [f"{new.volume.name}:/data"] and host["NetworkMode"] == new.network.name
    assert made["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", CHECK.command],
        "Interval": 5_000_000_000,
        "Timeout": 2_000_000_000,
        "StartPeriod": 4_000_000_000,
        "Retries": 3,
    }

    network, wanted_network = driver.api.inspect_network(new.network.name), driver.api.inspect_network(old.network.name)
    varying = ("Id", "Name", "Created", "Containers", "IPAM")
    assert _without(network, *varying) == _without(wanted_network, *varying)
    assert network["IPAM"] == wanted_network["IPAM"] | {"Config": [{"Subnet": new.network.subnet}]}
    assert network["Labels"] == new.labels and network["Driver"] == "bridge"
    volume, wanted_volume = driver.api.inspect_volume(new.volume.name), driver.api.inspect_volume(old.volume.name)
    assert _without(volume, "Name", "Mountpoint", "CreatedAt") == _without(
        wanted_volume, "Name", "Mountpoint", "CreatedAt"
    )


def test_sixteen_containers_from_eight_threads(
    driver: DockerDriver, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="urllib3")
    containers = [tenant.container(f"{i:02d}", healthcheck=None) for i in range(16)]
    calls = dict(driver.calls)
    threads: set[str] = set()

    def run(container: Container) -> None:
        threads.add(threading.current_thread().name)
        driver.run_container(container)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run, containers))
    assert len(threads) > 1
    observed = driver.observe(tenant.name)
    assert sorted(c.name for c in observed.containers if c.running) == sorted(c.name for c in containers)
    assert len({c.ip for c in observed.containers}) == 16
    assert driver.calls["mutate"] - calls["mutate"] == 16  # the counter lost no increment
    # Workers observing at once (the same request, so the same connection pool): every answer complete.
    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(lambda _: len(driver.observe(tenant.name).containers), range(32)))
    assert seen == [16] * 32
    assert driver.calls["list"] - calls["list"] == 3 * 33

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(driver.remove_container, observed.containers))
    after = driver.observe(tenant.name)
    assert after.containers == () and [v.name for v in after.volumes] == [tenant.volume.name]
    assert driver.calls["mutate"] - calls["mutate"] == 32
    # Pools large enough for the workers: no connection was opened and thrown away.
    assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]


def test_overlapping_subnet_is_subnet_taken_and_a_duplicate_name_is_refused(
    driver: DockerDriver, tenant: Tenant
) -> None:
    clash = Network(name=f"{tenant.owner}-other", tenant="other", subnet=tenant.network.subnet)
    with pytest.raises(SubnetTaken) as taken:
        driver.create_network(clash, tenant.labels)
    assert taken.value.tenant == "other" and taken.value.key == clash.name
    assert "overlaps" in str(taken.value)
    # The CLI checked for a duplicate name; so does the driver (engines before API 1.44 would make a second one).
    again = replace(tenant.network, subnet=free_subnet(driver, tenant.owner + "again"))
    with pytest.raises(TransientError, match=r"create network .*: network with name .* already exists"):
        driver.create_network(again, tenant.labels)
    assert len(driver.api.networks(names=[tenant.network.name])) == 1


def test_missing_image_with_pull_never_is_permanent_without_a_pull(
    owner_id: str, docker_client: Any, demo_images: Any
) -> None:
    driver = DockerDriver(owner_id, pull="never")
    tenant = Tenant(driver, owner_id)
    container = tenant.container("0", image="erp/does-not-exist:1")
    calls = driver.mutations
    with pytest.raises(PermanentError) as failed:
        driver.run_container(container)
    assert (
        str(failed.value) == f"run container {container.name}: No such image: erp/does-not-exist:1 (docker, permanent)"
    )
    assert driver.mutations - calls == 1  # no pull attempted


def test_missing_image_with_pull_missing_tries_the_pull_and_fails_cleanly(driver: DockerDriver, tenant: Tenant) -> None:
    # A registry on a port nothing listens on: the pull is refused at once, without leaving 127.0.0.0/8.
    image = "127.0.0.1:9/erp/none:1"
    calls = driver.mutations
    with pytest.raises(ReconcileError) as failed:
        driver.run_container(tenant.container("0", image=image))
    assert (failed.value.operation, failed.value.key, failed.value.tenant) == ("pull image", image, "acme")
    assert "127.0.0.1:9" in str(failed.value) and SECRET not in str(failed.value)
    assert driver.mutations - calls == 2  # the run, then the pull
    assert driver.observe(tenant.name).containers == ()


def test_an_invalid_option_is_permanent_and_no_env_value_is_quoted(driver: DockerDriver, tenant: Tenant) -> None:
    container = tenant.container("0", memory=MIB)  # below the engine's minimum
    with pytest.raises(PermanentError) as failed:
        driver.run_container(container)
    assert str(failed.value).startswith(f"run container {container.name}: Minimum memory limit")
    assert SECRET not in str(failed.value) and SECRET not in repr(failed.value.__cause__)


def test_a_name_in_use_is_a_transient_conflict(driver: DockerDriver, tenant: Tenant) -> None:
    container = tenant.container("0", healthcheck=None)
    driver.run_container(container)
    with pytest.raises(TransientError, match=r"run container .*: Conflict\. The container name .* is already in use"):
        driver.run_container(container)


def test_gone_objects_are_fine_to_remove_and_a_missing_container_cannot_start(
    driver: DockerDriver, tenant: Tenant
) -> None:
    ghost = tenant.container("ghost")
    driver.stop_container(ghost)
    driver.remove_container(ghost)
    driver.remove_network(Network(name=f"{tenant.owner}-ghost", tenant="ghost"))
    driver.remove_volume(f"{tenant.owner}-ghost-data", "ghost")
    with pytest.raises(TransientError, match=r"start container .*: No such container"):
        driver.start_container(ghost)


def test_stop_start_update_and_remove_keep_the_volume(driver: DockerDriver, tenant: Tenant, docker_client: Any) -> None:
    container = tenant.container("0", healthcheck=None)
    driver.run_container(container)
    driver.stop_container(container)
    assert driver.container(container.name).state == "exited"  # type: ignore[union-attr]
    driver.start_container(container)
    assert driver.container(container.name).state == "running"  # type: ignore[union-attr]

    # Drift made with the CLI (the SDK's update knows neither cpus nor pids); the driver puts the spec back.
    DockerClient().container.update(container.name, memory="48m", memory_swap="96m", cpus=0.5, pids_limit=100)
    drifted = docker_client.containers.get(container.name)
    assert drifted.attrs["HostConfig"]["NanoCpus"] == 5e8
    driver.update_container(container)
    drifted.reload()
    host = drifted.attrs["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (32 * MIB, 64 * MIB, 25e7, 200)

    driver.remove_container(replace(container, state="running"))
    assert driver.container(container.name) is None
    assert [v.name for v in driver.observe(tenant.name).volumes] == [tenant.volume.name]


def test_a_hung_engine_holds_a_mutation_no_longer_than_its_bound(
    owner_id: str, tenant: Tenant, link: EngineLink
) -> None:
    container = tenant.container("0", healthcheck=None)
    tenant.driver.run_container(container)
    tenant.driver.stop_container(container)
    hanging = DockerDriver(owner_id, docker_host=link.url, timeouts=DockerTimeouts(mutation=1))
    link.stall_posts.set()  # the engine takes requests and never answers a mutation
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"start container .*: no answer within 1s \(docker, transient\)"):
        hanging.start_container(container)
    with pytest.raises(TransientError, match=r"run container .*: no answer within 1s \(docker, transient\)"):
        hanging.run_container(tenant.container("1"))
    assert time.monotonic() - started < 6
    assert [c.name for c in hanging.observe(tenant.name).containers] == [container.name]  # reads still answer


def test_an_engine_gone_is_a_transient_error(owner_id: str, tenant: Tenant, link: EngineLink) -> None:
    driver = DockerDriver(owner_id, docker_host=link.url)
    link.close()
    with pytest.raises(TransientError, match=r"create volume .*: engine not reachable") as failed:
        driver.create_volume(Volume(name=f"{owner_id}-gone-data", tenant="gone"), tenant.labels)
    assert failed.value.tenant == "gone"
