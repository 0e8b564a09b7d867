"""Issue 5 acceptance, one active instance: two `reconciler run` on one PostgreSQL database, and SQLite's refusal."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Harness, wait_until
from tests.integration.runs import free_port, metric, readyz, spawn_run, stop

pytestmark = pytest.mark.integration

CATALOG = 'catalog:\n  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.1}\n'


def _tenants(replicas: int) -> str:
    body = "".join(
        f"  - name: {n}\n    domain: {n}.erp.test\n    services:\n      a: {{replicas: {replicas}}}\n"
        for n in ("acme", "globex")
    )
    return f"{CATALOG}tenants:\n{body}"


def _slots(h: Harness) -> Counter[tuple[str, str]]:
    return Counter(
        (c.labels["tenant-reconciler.tenant"], c.labels["tenant-reconciler.replica"]) for c in h.containers()
    )


def test_one_leader_applies_and_the_standby_takes_over_after_kill_9(harness: Harness, tmp_path: Path) -> None:
    h = harness
    h.import_yaml(_tenants(1))
    first_port, second_port = free_port(), free_port()
    h.env["RECONCILER_METRICS_ADDR"] = f"127.0.0.1:{first_port}"
    leader = h.start_run(log_path=tmp_path / "first.log")
    wait_until(lambda: metric(first_port, "reconciler_leader") == 1, timeout=20, what="the first instance leads")
    second = spawn_run({**h.env, "RECONCILER_METRICS_ADDR": f"127.0.0.1:{second_port}"}, tmp_path / "second.log")
    try:
        wait_until(lambda: readyz(second_port)[0] == 200, timeout=20, what="the second instance serving /readyz")
        code, body = readyz(second_port)
        assert code == 200 and "leader: standby" in body, body
        assert "leader: ok" in readyz(first_port)[1]
        assert metric(second_port, "reconciler_leader") == 0

        wait_until(lambda: len(h.running()) == 2, timeout=30, what="both tenants running")
        # Several resyncs later: still one container per slot, and the standby never acted.
        for _ in range(8):
            assert max(_slots(h).values()) == 1, _slots(h)
            time.sleep(0.5)
        assert "+ container" not in (tmp_path / "second.log").read_text()

        leader.kill()  # kill -9: the session (and its advisory lock) dies with the process
        leader.wait()
        changed = time.monotonic()
        h.import_yaml(_tenants(2))
        wait_until(lambda: len(h.running()) == 4, timeout=15, what="the standby converging the change")
        took = time.monotonic() - changed
        assert took <= 15, took
        assert metric(second_port, "reconciler_leader") == 1
        assert "leader: ok" in readyz(second_port)[1]
        assert max(_slots(h).values()) == 1, _slots(h)
        assert "+ container" in (tmp_path / "second.log").read_text()
    finally:
        assert stop(second) == 0


def test_sqlite_refuses_a_second_instance(owner_id: str, docker_client: Any, demo_images: Any, tmp_path: Path) -> None:
    h = Harness.create(owner_id, f"sqlite:///{tmp_path / 'one.sqlite3'}", docker_client)
    try:
        h.env["RECONCILER_METRICS_ADDR"] = f"127.0.0.1:{free_port()}"
        first = h.start_run(log_path=tmp_path / "first.log")
        wait_until(
            lambda: "reconciler running" in (tmp_path / "first.log").read_text(), timeout=20, what="first instance up"
        )
        h.env["RECONCILER_METRICS_ADDR"] = f"127.0.0.1:{free_port()}"
        second = h.cli("run", timeout=30)
        assert second.returncode == 1
        assert "SQLite allows one instance" in second.stderr and "one.sqlite3" in second.stderr, second.stderr
        assert first.poll() is None
    finally:
        h.stop_run()
        h.rt.engine.dispose()
