"""The local stack the other integration tests stand on: each service starts and answers, restarts work,
and the demo images behave as the reconciler's tests expect."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dns.resolver
import jsonschema
import pika
import psycopg2
import pytest
import yaml

from tests.conftest import OWNER_LABEL, REPO_ROOT, DemoImages, devstack
from tests.shared_specs import spec_path

integration = pytest.mark.integration


def _network(docker_client: Any, owner_id: str) -> Any:
    labels = {"tenant-reconciler.managed": "true", OWNER_LABEL: owner_id}
    return docker_client.networks.create(f"{owner_id}-devstack", driver="bridge", labels=labels)


def _run_demo(docker_client: Any, image: str, network: Any, owner_id: str, **env: str) -> Any:
    labels = {"tenant-reconciler.managed": "true", OWNER_LABEL: owner_id}
    container = docker_client.containers.run(
        image,
        detach=True,
        network=network.name,
        environment=env,
        labels=labels,
        name=f"{owner_id}-{secrets.token_hex(3)}",
    )
    container.reload()
    return container


def _ip(container: Any) -> str:
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"])


def _get_until(url: str, *, expect: int = 200, timeout: float = 5.0, headers: dict[str, str] | None = None) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        status, body = devstack.http_get(url, headers)
        if status == expect:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"GET {url}: HTTP {status} {body[:200]!r}, expected {expect}")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------- config files


def test_reference_traefik_config_is_valid_v3_static_config() -> None:
    schema = json.loads(spec_path("traefik-v3.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    reference = yaml.safe_load((REPO_ROOT / "deploy" / "traefik" / "traefik.yml").read_text())
    assert [e.message for e in validator.iter_errors(reference)] == []
    assert reference["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    assert reference["entryPoints"]["web"]["address"].startswith("127.0.0.1:")
    generated = devstack.traefik_static_config("127.0.0.1:1", "127.0.0.1:2", "/tmp/dyn", None)
    assert [e.message for e in validator.iter_errors(generated)] == []


# --------------------------------------------------------------------------------------------- services


@integration
def test_postgres_url_is_a_fresh_empty_database(postgres_url: str) -> None:
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database(), count(*) FROM pg_tables WHERE schemaname = 'public'")
        name, tables = cur.fetchone()
        assert postgres_url.endswith(f"/{name}") and name != "postgres"
        assert tables == 0
        cur.execute("CREATE TABLE probe (id int)")


@integration
def test_powerdns_api_dns_and_restart(powerdns: devstack.PowerDNS) -> None:
    key = {"X-API-Key": powerdns.api_key}
    status, body = devstack.http_get(f"{powerdns.api_url}/api/v1/servers/localhost", key)
    assert status == 200 and json.loads(body)["id"] == "localhost"
    assert devstack.http_get(f"{powerdns.api_url}/api/v1/servers/localhost")[0] == 401

    zone = f"devstack-{powerdns.api_port}.test."
    rrsets = [{"name": f"www.{zone}", "type": "A", "ttl": 60, "records": [{"content": "192.0.2.7", "disabled": False}]}]
    payload = json.dumps({"name": zone, "kind": "Native", "nameservers": [], "rrsets": rrsets}).encode()
    headers = {**key, "Content-Type": "application/json"}
    assert devstack.http_post(f"{powerdns.api_url}/api/v1/servers/localhost/zones", payload, headers) == 201

    def resolve() -> str:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [powerdns.host]
        resolver.port = powerdns.dns_port
        return str(resolver.resolve(f"www.{zone}", "A")[0])

    assert resolve() == "192.0.2.7"
    began = time.monotonic()
    powerdns.stop()
    assert not powerdns.running()
    assert devstack.http_get(f"{powerdns.api_url}/api/v1/servers/localhost", key)[0] == 0
    powerdns.start()
    assert time.monotonic() - began < 10
    assert resolve() == "192.0.2.7"  # same ports, same database


@integration
def test_traefik_ping_overview_and_file_route(
    traefik: devstack.Traefik, docker_client: Any, demo_images: DemoImages, owner_id: str
) -> None:
    assert devstack.http_get(f"{traefik.api_url}/ping") == (200, b"OK")
    status, body = devstack.http_get(f"{traefik.api_url}/api/overview")
    assert status == 200 and "http" in json.loads(body)

    container = _run_demo(docker_client, demo_images.v1, _network(docker_client, owner_id), owner_id, ERP_TENANT="acme")
    host = f"{owner_id}.erp.test"
    dynamic = {
        "http": {
            "routers": {owner_id: {"rule": f"Host(`{host}`)", "service": owner_id, "entryPoints": ["web"]}},
            "services": {owner_id: {"loadBalancer": {"servers": [{"url": f"http://{_ip(container)}:8080"}]}}},
        }
    }
    route_file = traefik.dynamic_dir / f"{owner_id}.yml"
    route_file.write_text(json.dumps(dynamic))
    try:
        body = _get_until(f"{traefik.web_url}/", headers={"Host": host})
        assert body.startswith(b"tenant=acme service=none version=1 ")
    finally:
        route_file.unlink()
    _get_until(f"{traefik.web_url}/", headers={"Host": host}, expect=404)


@integration
def test_rabbitmq_queue_survives_restart(rabbitmq: devstack.RabbitMQ, owner_id: str) -> None:
    queue = f"devstack-{owner_id}"
    with pika.BlockingConnection(pika.URLParameters(rabbitmq.url)) as conn:
        channel = conn.channel()
        channel.queue_declare(queue, durable=True)
        channel.basic_publish("", queue, b"hello", pika.BasicProperties(delivery_mode=2))

    rabbitmq.stop()
    assert not rabbitmq.running()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    rabbitmq.start()

    with pika.BlockingConnection(pika.URLParameters(rabbitmq.url)) as conn:
        channel = conn.channel()
        method, _, body = channel.basic_get(queue, auto_ack=True)
        assert method is not None and body == b"hello"
        channel.queue_delete(queue)
    assert rabbitmq.ctl("status").returncode == 0


@integration
def test_prometheus_ready_and_reload(prometheus: devstack.Prometheus) -> None:
    assert devstack.http_get(f"{prometheus.url}/-/ready")[0] == 200
    original = prometheus.config
    try:
        prometheus.reload(
            "global: {scrape_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{prometheus.port}']}}]\n"
        )
        status, body = devstack.http_get(f"{prometheus.url}/api/v1/status/config")
        assert status == 200
        assert "job_name: self" in json.loads(body)["data"]["yaml"]
    finally:
        prometheus.reload(original)


@integration
def test_node_exporter_serves_the_hosts_memory_and_cpus_only(node_exporter: devstack.NodeExporter) -> None:
    status, body = devstack.http_get(f"http://{node_exporter.address}/metrics")
    names = {line.split("{")[0].split(" ")[0] for line in body.decode().splitlines() if not line.startswith("#")}
    assert status == 200 and {"node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes"} <= names
    assert "node_cpu_seconds_total" in names
    assert not any(name.startswith(("node_filesystem_", "node_network_")) for name in names)  # defaults are off
    assert f'targets: ["{node_exporter.address}"]' in node_exporter.scrape_job()


@integration
def test_stack_prometheus_scrapes_the_stacks_node_exporter(tmp_path: Path) -> None:
    stack = devstack.Stack(tmp_path / "stack")
    pids: list[int | None] = []
    try:
        stack.up(["node_exporter", "prometheus"])
        exporter, prometheus = stack.services["node_exporter"], stack.services["prometheus"]
        assert isinstance(exporter, devstack.NodeExporter) and isinstance(prometheus, devstack.Prometheus)
        assert "job_name: reconciler" in prometheus.config and f'"{exporter.address}"' in prometheus.config

        def node_up() -> bool:
            status, body = devstack.http_get(f"{prometheus.url}/api/v1/query?query=up%7Bjob%3D%22node%22%7D")
            result = json.loads(body)["data"]["result"] if status == 200 else []
            return bool(result) and result[0]["value"][1] == "1"

        devstack.wait_for(node_up, 60, "the node job up in the stack's Prometheus")
        pids = [exporter.pid, prometheus.pid]
    finally:
        stack.down()
    assert not any(devstack.pid_running(pid) for pid in pids)


@integration
def test_devstack_cli_up_env_down(tmp_path: Path) -> None:
    script = REPO_ROOT / "deploy" / "devstack.py"
    state_dir = tmp_path / "stack"
    cmd = [sys.executable, str(script)]
    only = ["--only", "powerdns", "--only", "traefik"]
    up = subprocess.run([*cmd, "up", "--state-dir", str(state_dir), *only], capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stderr
        env = subprocess.run([*cmd, "env", "--state-dir", str(state_dir)], capture_output=True, text=True).stdout
        for var in ("RECONCILER_POWERDNS_URL", "RECONCILER_POWERDNS_API_KEY", "RECONCILER_TRAEFIK_API_URL"):
            assert f"export {var}=" in env
        state = json.loads((state_dir / "state.json").read_text())
        pids = [s["pid"] for s in state["services"].values()]
        assert all(devstack.pid_running(pid) for pid in pids)
    finally:
        down = subprocess.run([*cmd, "down", "--state-dir", str(state_dir)], capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert not any(devstack.pid_running(pid) for pid in pids)


# --------------------------------------------------------------------------------------------- demo images


@integration
def test_demo_image_serves_identity_and_health_and_stops_fast(
    docker_client: Any, demo_images: DemoImages, owner_id: str
) -> None:
    network = _network(docker_client, owner_id)
    container = _run_demo(
        docker_client, demo_images.v2, network, owner_id, ERP_TENANT="acme", ERP_SERVICE="a", ERP_REPLICA="1"
    )
    ip = _ip(container)
    body = _get_until(f"http://{ip}:8080/").decode()
    assert body.startswith(f"tenant=acme service=a version=2 replica=1 host={container.id[:12]}")
    assert _get_until(f"http://{ip}:8080/health") == b"ok"
    # reachable from another container on the same network too
    out = docker_client.containers.run(
        demo_images.busybox,
        ["wget", "-q", "-O", "-", f"http://{ip}:8080/"],
        network=network.name,
        labels={OWNER_LABEL: owner_id},
        remove=True,
    )
    assert out.decode() == body

    began = time.monotonic()
    container.stop(timeout=10)
    took = time.monotonic() - began
    container.reload()
    # Well under the 10 s grace: the image stops on SIGTERM rather than waiting to be killed.
    assert took < 8, f"docker stop took {took:.1f} s"
    assert container.attrs["State"]["ExitCode"] == 0


@integration
def test_demo_image_unhealthy_and_crash_after(docker_client: Any, demo_images: DemoImages, owner_id: str) -> None:
    network = _network(docker_client, owner_id)
    container = _run_demo(docker_client, demo_images.v1, network, owner_id, ERP_UNHEALTHY="1", ERP_CRASH_AFTER="1")
    ip = _ip(container)
    _get_until(f"http://{ip}:8080/health", expect=404, timeout=3)
    assert container.wait(timeout=10)["StatusCode"] == 1


@integration
def test_demo_image_migration_writes_data_and_fails_on_demand(
    docker_client: Any, demo_images: DemoImages, owner_id: str
) -> None:
    labels = {OWNER_LABEL: owner_id}
    volume = docker_client.volumes.create(f"{owner_id}-data", labels=labels)
    mounts = {volume.name: {"bind": "/data", "mode": "rw"}}

    def migrate(image: str, **env: str) -> tuple[int, str]:
        container = docker_client.containers.run(
            image, ["erp-migrate"], environment=env, volumes=mounts, labels=labels, detach=True
        )
        code = container.wait(timeout=20)["StatusCode"]
        logs = container.logs().decode()
        container.remove()
        return code, logs

    assert migrate(demo_images.v1)[0] == 0
    assert migrate(demo_images.v2)[0] == 0
    code, logs = migrate(demo_images.v2, ERP_MIGRATE_FAIL="1")
    assert code == 1 and "failed" in logs
    cat = docker_client.containers.run(
        demo_images.busybox,
        ["sh", "-c", "cat /data/migrations.log && touch /data/.fail-migration"],
        volumes=mounts,
        labels=labels,
        remove=True,
    ).decode()
    lines = cat.splitlines()
    assert [line.split(" at ")[0] for line in lines] == ["migrated to version 1", "migrated to version 2"]
    assert migrate(demo_images.v2)[0] == 1
