"""Issue 10 items 4-5 and issue 11 on the real engine: drift the labels cannot show, permanent errors parked,
container defaults. (Bounded Docker calls: test_docker_driver_api.py, on the Engine API.)"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Harness, wait_until
from tests.integration.runs import free_port, json_log, metric, reconcile_starts

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
CATALOG = 'catalog:\n  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 64M, cpus: 0.25}\n'
TENANTS = """tenants:
  - name: acme
    domain: acme.erp.test
    services:
      a: {replicas: 2}
  - name: globex
    domain: globex.erp.test
    services:
      a: {}
"""


def _ids(h: Harness) -> dict[str, str]:
    return {c.name: c.id for c in h.containers()}


def _events_since(h: Harness, since: float) -> list[tuple[str, str]]:
    events = h.docker_client.api.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"label": [f"tenant-reconciler.owner={h.owner}"]},
    )
    return [(e["Action"], e["Actor"]["Attributes"].get("name", "")) for e in events if e.get("Type") == "container"]


def _json_debug(h: Harness) -> None:
    h.env.update(
        {
            "RECONCILER_LOG_JSON": "true",
            "RECONCILER_LOG_LEVEL": "DEBUG",
            "RECONCILER_METRICS_ADDR": f"127.0.0.1:{free_port()}",
        }
    )


def test_docker_update_and_network_disconnect_healed_without_other_changes(harness: Harness, tmp_path: Path) -> None:
    h = harness
    _json_debug(h)
    h.import_yaml(CATALOG + TENANTS)
    assert h.apply().ok
    log = tmp_path / "run.log"
    h.start_run(log_path=log)
    port = int(h.env["RECONCILER_METRICS_ADDR"].rsplit(":", 1)[1])
    wait_until(lambda: metric(port, "reconciler_event_stream_connected") == 1, timeout=20, what="event stream open")
    time.sleep(1.05 - time.time() % 1)  # Docker's event filter counts whole seconds
    since = time.time()
    before = _ids(h)

    # docker update --memory 48m: the labels still say 64M; put back in place, the same container.
    victim = next(c for c in h.containers("acme") if c.labels["tenant-reconciler.replica"] == "0")
    victim.update(mem_limit="48m")
    victim.reload()
    assert victim.attrs["HostConfig"]["Memory"] == 48 * MIB

    def healed() -> bool:
        victim.reload()
        return bool(victim.attrs["HostConfig"]["Memory"] == 64 * MIB)

    wait_until(healed, timeout=20, what="memory limit put back")
    assert victim.attrs["HostConfig"]["NanoCpus"] == int(0.25 * 1e9)
    assert _ids(h) == before  # nothing replaced
    time.sleep(1.5)
    # Docker's own record: only updates of that one container (ours and the test's), nothing created or killed.
    assert {action for action, _ in _events_since(h, since)} == {"update"}
    assert {name for _, name in _events_since(h, since)} == {victim.name}
    records = [r for r in json_log(log) if "limits changed outside the reconciler" in str(r.get("msg"))]
    assert records and "memory 48MiB -> 64MiB" in str(records[0]["msg"])

    # docker network disconnect: that container is put back on its network; no other container changes.
    lonely = h.containers("globex")[0]
    h.network("globex").disconnect(lonely, force=True)

    def reattached() -> bool:
        found = h.containers("globex")
        return (
            len(found) == 1
            and found[0].status == "running"
            and list(found[0].attrs["NetworkSettings"]["Networks"]) == [f"{h.owner}-globex"]
        )

    wait_until(reattached, timeout=30, what="globex container back on its network")
    after = _ids(h)
    assert {n: i for n, i in after.items() if "-acme-" in n} == {n: i for n, i in before.items() if "-acme-" in n}
    assert h.stop_run() == 0


def test_round_robin_inspects_a_bounded_number_per_resync_and_finds_drift_events_missed(harness: Harness) -> None:
    h = harness
    h.env["RECONCILER_INSPECT_PER_RESYNC"] = "1"
    h.rebuild()
    h.import_yaml(CATALOG + TENANTS)
    assert h.apply().ok
    docker = h.rt.docker
    # No reconciler was running: no event marked the container; only the round-robin can find this.
    victim = sorted(h.containers("acme"), key=lambda c: c.name)[1]
    victim.update(mem_limit="40m")
    found = []
    for _ in range(3):  # three resyncs: sweep, then the passes it queues (as the loop does)
        h.rt.reconciler.sweep()
        docker.inspections.advance()
        calls = dict(docker.calls)
        result = h.apply(scope={"acme", "globex"})
        assert result.ok, result.errors
        assert docker.calls["list"] - calls.get("list", 0) == 3
        assert docker.calls["inspect"] - calls.get("inspect", 0) <= 1
        found += [c for c in result.plan.changes if c.operation == "update"]
        docker.inspections.settle({"acme", "globex"}, docker.inspections.position())
    assert [c.name for c in found] == [victim.name]
    victim.reload()
    assert victim.attrs["HostConfig"]["Memory"] == 64 * MIB


def test_no_op_pass_stays_at_three_list_calls_with_inspections_counted_apart(harness: Harness) -> None:
    h = harness
    h.import_yaml(CATALOG + TENANTS)
    assert h.apply().ok
    docker = h.rt.docker
    for container in h.containers():
        docker.inspections.mark(container.name, container.labels["tenant-reconciler.tenant"])
    calls = dict(docker.calls)
    result = h.apply(scope={"acme"})
    assert result.ok and result.plan.empty
    assert docker.calls["list"] - calls["list"] == 3
    assert docker.calls["inspect"] - calls.get("inspect", 0) == 2  # acme's two, not globex's
    assert docker.calls["mutate"] == calls["mutate"]


def test_container_defaults_reach_the_engine(harness: Harness) -> None:
    h = harness
    h.env.update({"RECONCILER_CONTAINER_PIDS_LIMIT": "200", "RECONCILER_CONTAINER_LOG_MAX_SIZE": "2m"})
    h.rebuild()
    h.import_yaml(CATALOG + TENANTS)
    assert h.apply().ok
    host = h.containers("globex")[0].attrs["HostConfig"]
    assert host["PidsLimit"] == 200
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "2m"}}
    assert host["SecurityOpt"] == ["no-new-privileges"]
    # Changing a default replaces the containers once, then the plan is empty again.
    h.env["RECONCILER_CONTAINER_PIDS_LIMIT"] = "300"
    h.rebuild()
    result = h.apply()
    assert result.ok and {c.action.name for c in result.plan.changes} == {"REPLACE"}
    assert h.containers("globex")[0].attrs["HostConfig"]["PidsLimit"] == 300
    assert h.apply().plan.empty


def test_missing_image_is_permanent_parked_until_the_catalog_changes(harness: Harness, tmp_path: Path) -> None:
    h = harness
    _json_debug(h)
    h.env["RECONCILER_IMAGE_PULL"] = "never"
    broken = CATALOG.replace("erp/demo-svc:1", "erp/does-not-exist:1")
    h.import_yaml(broken + TENANTS.split("  - name: globex")[0])
    log = tmp_path / "run.log"
    h.start_run(log_path=log)

    def failed() -> dict[str, Any] | None:
        status = {s["tenant"]: s for s in json.loads(h.cli("status", "--json").stdout)}.get("acme")
        return status if status and status["phase"] == "Failed" else None

    status = wait_until(failed, timeout=30, what="acme failed")
    assert "No such image: erp/does-not-exist:1" in status["last_error"]
    assert status["last_error"].endswith("(docker, permanent)")
    wait_until(lambda: "not retried until its spec or the catalog changes" in log.read_text(), timeout=10)
    parked_at = reconcile_starts(log, "acme")
    time.sleep(5)  # two resyncs (every 2 s) and the backoff's first retries: none reconciles acme
    assert reconcile_starts(log, "acme") == parked_at
    assert "retry in" not in log.read_text()

    h.import_yaml(CATALOG + TENANTS.split("  - name: globex")[0])  # the catalog gets an image that exists
    wait_until(lambda: len(h.running("acme")) == 2, timeout=30, what="acme running after the catalog fix")
    assert h.stop_run() == 0
