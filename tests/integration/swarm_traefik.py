"""Traefik inside the Swarm lab for routing tests: a container on n1 attached to the tenant overlays.

Nothing in the root namespace reaches a task's overlay address (and this kernel has no IPVS for VIPs), so Traefik
runs where it can: a container on node n1 (the project's Traefik binary bind-mounted into the lab's demo image)
with the reconciler's route directory bind-mounted as its file provider; the reconciler joins it to each tenant
overlay it creates (``RECONCILER_SWARM_ROUTER_CONTAINER``). Its web
and API entrypoints are published on n1's address, and two ``socat`` forwards (one in n1's namespace listening on a
unix socket, one on 127.0.0.1 in the root namespace) bring them to the test and the reconciler, which talk only to
127.0.0.1. Started and stopped by the test (container by name, forwards by pid); ``LabTraefik.recreate`` replaces
the container by hand the way an operator would (same name, mounts and host ports, none of the overlays).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deploy.devstack import traefik_binary, traefik_static_config
from tests.integration.runs import free_port
from tests.integration.swarm import SwarmLab, wait_until

N1_ADDRESS = "10.232.7.11"
N1_NAMESPACE = "trsw-n1"


@dataclass
class LabTraefik:
    lab: SwarmLab
    name: str
    dynamic_dir: Path
    web_url: str
    api_url: str
    forwards: list[subprocess.Popen[bytes]] = field(default_factory=list)
    command: list[str] = field(default_factory=list)

    def recreate(self) -> None:
        """``docker rm -f`` and ``docker run`` again with the same options: attached to no tenant overlay."""
        self.lab.docker("rm", "-f", self.name)
        self.lab.docker(*self.command)


def _forward(sock: Path, port: int, target: int) -> list[subprocess.Popen[bytes]]:
    inner = subprocess.Popen(
        ["ip", "netns", "exec", N1_NAMESPACE, "socat", f"UNIX-LISTEN:{sock},fork", f"TCP:{N1_ADDRESS}:{target}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    outer = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"UNIX-CONNECT:{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return [inner, outer]


@contextmanager
def lab_traefik(lab: SwarmLab, owner: str, workdir: Path) -> Iterator[LabTraefik]:
    dynamic = workdir / "dynamic"
    dynamic.mkdir(parents=True, exist_ok=True)
    config = workdir / "traefik.json"
    config.write_text(json.dumps(traefik_static_config(":8000", ":8080", "/dyn", None)))
    name = f"{owner}-traefik"
    lab.docker("rm", "-f", name, check=False)

    def run(web: str = "", api: str = "") -> list[str]:
        return [
            "run", "-d", "--name", name, "--label", f"tenant-reconciler.owner={owner}",
            "-p", f"{N1_ADDRESS}:{web}:8000", "-p", f"{N1_ADDRESS}:{api}:8080",
            "-v", f"{traefik_binary()}:/traefik:ro", "-v", f"{config}:/etc/traefik.json:ro", "-v", f"{dynamic}:/dyn",
            "--entrypoint", "/traefik", f"{lab.registry}/erp/demo-svc:1", "--configFile=/etc/traefik.json",
        ]  # fmt: skip

    lab.docker(*run())
    ports = json.loads(lab.docker("inspect", "--format", "{{json .NetworkSettings.Ports}}", name))
    web_target, api_target = ports["8000/tcp"][0]["HostPort"], ports["8080/tcp"][0]["HostPort"]
    web_port, api_port = free_port(), free_port()
    forwards = _forward(workdir / "web.sock", web_port, int(web_target))
    forwards += _forward(workdir / "api.sock", api_port, int(api_target))
    traefik = LabTraefik(
        lab, name, dynamic, f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{api_port}", forwards,
        command=run(web_target, api_target),
    )  # fmt: skip
    try:
        import httpx

        def pinged() -> bool:
            try:
                return httpx.get(f"{traefik.api_url}/ping", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
                return False

        wait_until(pinged, 60, "Traefik in the lab to answer /ping")
        yield traefik
    finally:
        for process in forwards:
            process.terminate()
            process.wait(timeout=10)
        lab.docker("rm", "-f", name, check=False)
