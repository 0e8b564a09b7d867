"""The Swarm lab for tests marked ``swarm`` (``scripts/swarm.sh``): started once per session, taken down after.

A lab that was already up when the session began is left up. When the lab cannot start (not root, a tool
missing, an engine that does not come up) the tests are skipped with the script's reason, and FAIL in CI
(``CI`` true), where the lab must work.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.shared_specs import in_ci

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "swarm.sh"
# Generous: the engines start in seconds, but two cores shared with other test sessions are slow at times.
UP_TIMEOUT = 240


@dataclass(frozen=True)
class SwarmLab:
    """The running lab: its manager's Docker host and the registry the nodes pull from."""

    manager: str
    registry: str

    def socket(self, node: str) -> str:
        return self.manager.replace("/n1.sock", f"/{node}.sock")

    def docker(self, *args: str, node: str = "n1", check: bool = True) -> str:
        done = subprocess.run(
            ["docker", "-H", self.socket(node), *args], capture_output=True, text=True, timeout=120, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} on {node}: {done.stderr.strip()}")
        return done.stdout

    def inspect(self, *ids: str) -> list[dict[str, Any]]:
        loaded: list[dict[str, Any]] = json.loads(self.docker("inspect", *ids))
        return loaded


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"the Swarm lab did not start: {reason}; CI must run the swarm tests", pytrace=False)
    pytest.skip(f"the Swarm lab did not start: {reason}")


def _script(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), command], capture_output=True, text=True, timeout=UP_TIMEOUT, check=False)


def start_lab() -> Iterator[SwarmLab]:
    started = _script("up")
    if started.returncode != 0:
        _unavailable(started.stderr.strip()[-500:] or f"exit code {started.returncode}")
    env = _script("env").stdout.strip()  # "export DOCKER_HOST=unix:///run/trsw/n1.sock"
    lab = SwarmLab(manager=env.split("=", 1)[1], registry="10.232.7.11:5000")
    try:
        yield lab
    finally:
        if "already up" not in started.stderr:
            stopped = _script("down")
            assert stopped.returncode == 0, f"scripts/swarm.sh down failed: {stopped.stderr.strip()[-500:]}"


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
