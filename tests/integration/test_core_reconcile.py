"""Issue 2 acceptance on the real Docker engine and a real PostgreSQL (and SQLite for the converge test)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import REPO_ROOT, Harness, wait_until

pytestmark = pytest.mark.integration

EXAMPLE = (REPO_ROOT / "deploy" / "examples" / "tenants.yaml").read_text()
MIB = 1024 * 1024

SMALL = """
catalog:
  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 64M, cpus: 0.25}
  b: {image: "erp/demo-svc:1", port: 8080, memory: 32M, cpus: 0.1}
tenants:
  - name: acme
    domain: acme.erp.test
    services:
      a: {replicas: 2}
  - name: globex
    domain: globex.erp.test
    services:
      a: {}
"""


def _tenant_yaml(name: str, services: str, state: str = "running") -> str:
    catalog = SMALL.split("tenants:")[0]
    head = f"tenants:\n  - name: {name}\n    domain: {name}.erp.test\n    state: {state}\n"
    return f"{catalog}{head}    services:\n{services}"


def _by_slot(h: Harness, tenant: str) -> dict[tuple[str, int], Any]:
    return {
        (c.labels["tenant-reconciler.service"], int(c.labels["tenant-reconciler.replica"])): c
        for c in h.containers(tenant)
    }


def _docker_events_since(h: Harness, since: float) -> list[dict[str, Any]]:
    events = h.docker_client.api.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"label": [f"tenant-reconciler.owner={h.owner}"]},
    )
    return [e for e in events if e.get("Action") not in ("exec_create", "exec_start", "exec_die")]


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db_harness(
    request: pytest.FixtureRequest, owner_id: str, docker_client: Any, demo_images: Any, tmp_path: Path
) -> Any:
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgresql"
        else (f"sqlite:///{tmp_path / 'reconciler.sqlite3'}")
    )
    h = Harness.create(owner_id, url, docker_client)
    yield h
    h.stop_run()


def test_converge_example_tenants_from_empty(any_db_harness: Harness) -> None:
    h = any_db_harness
    h.import_yaml(EXAMPLE)
    result = h.apply()
    assert result.ok, result.errors

    acme = _by_slot(h, "acme")
    assert set(acme) == {("a", 0), ("a", 1), ("b", 0)}
    for (service, replica), container in acme.items():
        container.reload()
        assert container.status == "running"
        host = container.attrs["HostConfig"]
        assert host["Memory"] == 64 * MIB
        assert host["NanoCpus"] == int(0.25 * 1e9)
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        labels = container.labels
        assert labels["tenant-reconciler.managed"] == "true"
        assert labels["tenant-reconciler.tenant"] == "acme"
        assert labels["tenant-reconciler.service"] == service
        assert labels["tenant-reconciler.replica"] == str(replica)
        assert list(container.attrs["NetworkSettings"]["Networks"]) == [f"{h.owner}-acme"]
        mounts = {m["Name"]: m["Destination"] for m in container.attrs["Mounts"]}
        assert mounts == {f"{h.owner}-acme-data": "/data"}
    globex_c = next(c for c in h.containers("globex") if c.labels["tenant-reconciler.service"] == "c")
    assert globex_c.attrs["HostConfig"]["Memory"] == 48 * MIB
    # initech is stopped: nothing is started for it, but its network and volume exist.
    assert h.running("initech") == []
    assert h.network("acme") is not None and h.network("globex") is not None
    assert {f"{h.owner}-{t}-data" for t in ("acme", "globex", "initech")} <= h.volume_names()
    subnet = h.network("acme").attrs["IPAM"]["Config"][0]["Subnet"]
    assert subnet.startswith("10.213.") and subnet.endswith("/26")

    plan = h.cli("plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "0 to create, 0 to update, 0 to replace, 0 to delete" in plan.stdout


def test_second_pass_makes_no_mutating_docker_call(harness: Harness) -> None:
    harness.import_yaml(SMALL)
    assert harness.apply().ok
    calls_before = dict(harness.rt.docker.calls)
    # Docker's event filter counts whole seconds: start measuring at the next one.
    time.sleep(1.05 - time.time() % 1)
    since = time.time()
    result = harness.apply()
    assert result.ok and result.plan.empty
    assert harness.rt.docker.calls["mutate"] == calls_before["mutate"]
    assert harness.rt.docker.calls["list"] - calls_before["list"] == 3  # one snapshot: containers, networks, volumes
    assert _docker_events_since(harness, since) == []


def test_plan_cli_shows_pending_changes_and_json(harness: Harness) -> None:
    harness.import_yaml(SMALL)
    text = harness.cli("plan")
    assert text.returncode == 2, text.stderr
    assert "+ container" in text.stdout and "replica 1 of a missing" in text.stdout
    machine = harness.cli("plan", "--json")
    assert machine.returncode == 2
    data = json.loads(machine.stdout)
    assert data["summary"]["create"] == 7
    assert {c["kind"] for c in data["changes"]} == {"network", "volume", "container"}
    applied = harness.cli("apply")
    assert applied.returncode == 0, applied.stderr
    assert "Applied 7 changes" in applied.stdout
    status = json.loads(harness.cli("status", "--json").stdout)
    assert {s["tenant"]: s["phase"] for s in status} == {"acme": "Ready", "globex": "Ready"}


def test_self_heal_with_reconciler_run(harness: Harness, tmp_path: Path) -> None:
    harness.import_yaml(SMALL)
    assert harness.apply().ok
    harness.start_run(log_path=tmp_path / "run.log")

    # docker rm -f of a tenant container -> replaced.
    victim = _by_slot(harness, "acme")[("a", 1)]
    victim.remove(force=True)
    replaced = wait_until(
        lambda: (c := _by_slot(harness, "acme").get(("a", 1))) is not None and c.status == "running" and c,
        timeout=20,
        what="removed replica recreated",
    )
    assert replaced.id != victim.id

    # docker kill -> running again (the restart policy does not undo a kill).
    killed = _by_slot(harness, "globex")[("a", 0)]
    killed.kill()
    wait_until(lambda: (killed.reload(), killed.status == "running")[1], timeout=20, what="killed container restarted")

    # tenant network removed by hand -> recreated and the containers reattached.
    network = harness.network("acme")
    for container in harness.containers("acme"):
        network.disconnect(container, force=True)
    network.remove()

    def reattached() -> bool:
        net = harness.network("acme")
        if net is None:
            return False
        containers = harness.containers("acme")
        return len(containers) == 2 and all(
            c.status == "running" and list(c.attrs["NetworkSettings"]["Networks"]) == [net.name] for c in containers
        )

    wait_until(reattached, timeout=30, what="network recreated and containers reattached")
    assert harness.stop_run() == 0
    log = (tmp_path / "run.log").read_text()
    assert "replica 1 of a missing" in log


def test_stale_labelled_container_replaced_and_foreign_left_alone(harness: Harness, demo_images: Any) -> None:
    harness.import_yaml(_tenant_yaml("acme", "      a: {replicas: 1}\n"))
    assert harness.apply().ok
    current = _by_slot(harness, "acme")[("a", 0)]
    labels = dict(current.labels) | {"tenant-reconciler.spec-hash": "0000stale0000"}
    current.remove(force=True)
    stale = harness.docker_client.containers.run(
        demo_images.v1,
        name=f"{harness.owner}-acme-a-0-stale",
        labels=labels,
        detach=True,
        network=f"{harness.owner}-acme",
    )
    foreign = harness.docker_client.containers.run(
        demo_images.v1,
        name=f"{harness.owner}-foreign",
        labels={"tenant-reconciler.tenant": "acme"},
        detach=True,
    )
    try:
        result = harness.apply()
        assert result.ok, result.errors
        replacements = [c for o in result.outcomes.values() for c in o.applied if c.action.value == "-/+"]
        assert [c.before.name for c in replacements if c.before] == [stale.name]
        slot = _by_slot(harness, "acme")[("a", 0)]
        assert slot.labels["tenant-reconciler.spec-hash"] != "0000stale0000"
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)


def _converge(h: Harness, services: str, state: str = "running", *, allow_mass_delete: bool = False) -> Any:
    h.import_yaml(_tenant_yaml("acme", services, state))
    result = h.apply(allow_mass_delete=allow_mass_delete)
    assert result.ok, result.errors
    return result


def test_scale_up_and_down(harness: Harness) -> None:
    _converge(harness, "      a: {replicas: 1}\n")
    _converge(harness, "      a: {replicas: 3}\n")
    assert sorted(_by_slot(harness, "acme")) == [("a", 0), ("a", 1), ("a", 2)]
    keep = _by_slot(harness, "acme")[("a", 0)].id
    result = _converge(harness, "      a: {replicas: 1}\n")
    removed = [c.before.replica for o in result.outcomes.values() for c in o.applied if c.before is not None]
    assert removed == [2, 1]  # highest index first
    assert list(_by_slot(harness, "acme")) == [("a", 0)]
    assert _by_slot(harness, "acme")[("a", 0)].id == keep


def test_image_change_replaces_and_keeps_the_volume(harness: Harness) -> None:
    _converge(harness, "      a: {replicas: 2}\n")
    first = _by_slot(harness, "acme")[("a", 0)]
    first.exec_run(["sh", "-c", "echo precious > /data/keep.txt"])
    _converge(harness, '      a: {replicas: 2, image: "erp/demo-svc:2"}\n')
    slots = _by_slot(harness, "acme")
    assert {c.labels["tenant-reconciler.image"] for c in slots.values()} == {"erp/demo-svc:2"}
    assert len(harness.containers("acme")) == 2
    out = slots[("a", 0)].exec_run(["cat", "/data/keep.txt"]).output.decode()
    assert out.strip() == "precious"


def test_limits_change_replaces_with_new_limits(harness: Harness) -> None:
    _converge(harness, "      a: {replicas: 1}\n")
    _converge(harness, "      a: {replicas: 1, memory: 96M, cpus: 0.5}\n")
    container = _by_slot(harness, "acme")[("a", 0)]
    assert container.attrs["HostConfig"]["Memory"] == 96 * MIB
    assert container.attrs["HostConfig"]["NanoCpus"] == int(0.5e9)
    assert len(harness.containers("acme")) == 1


def test_stop_keeps_containers_stopped_not_removed(harness: Harness) -> None:
    _converge(harness, "      a: {replicas: 2}\n")
    ids = {c.id for c in harness.containers("acme")}
    _converge(harness, "      a: {replicas: 2}\n", state="stopped")
    containers = harness.containers("acme")
    assert {c.id for c in containers} == ids
    assert {c.status for c in containers} == {"exited"}
    assert harness.rt.reconciler.compute().plan.empty
    _converge(harness, "      a: {replicas: 2}\n", state="running")
    assert {c.status for c in harness.containers("acme")} == {"running"}
    assert {c.id for c in harness.containers("acme")} == ids


def test_absent_removes_containers_and_network_but_keeps_volume(harness: Harness) -> None:
    _converge(harness, "      a: {replicas: 2}\n")
    # The only tenant going away removes everything we own: the guard wants it said explicitly.
    _converge(harness, "      a: {replicas: 2}\n", state="absent", allow_mass_delete=True)
    assert harness.containers("acme") == []
    assert harness.network("acme") is None
    assert f"{harness.owner}-acme-data" in harness.volume_names()
    statuses = json.loads(harness.cli("status", "--json").stdout)
    assert statuses[0]["phase"] == "Absent"


def test_purge_refuses_while_containers_exist_then_deletes_the_volume(harness: Harness) -> None:
    _converge(harness, "      a: {replicas: 1}\n")
    refused = harness.cli("tenants", "purge", "acme", "--yes")
    assert refused.returncode == 1 and "containers still exist" in refused.stderr
    assert f"{harness.owner}-acme-data" in harness.volume_names()
    _converge(harness, "      a: {replicas: 1}\n", state="absent", allow_mass_delete=True)
    unconfirmed = harness.cli("tenants", "purge", "acme")
    assert unconfirmed.returncode == 1 and "--yes" in unconfirmed.stderr
    assert f"{harness.owner}-acme-data" in harness.volume_names()
    purged = harness.cli("tenants", "purge", "acme", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert f"{harness.owner}-acme-data" not in harness.volume_names()


def test_bad_input_gets_clear_errors_and_others_converge(harness: Harness) -> None:
    harness.import_yaml(SMALL)
    harness.execute_sql(
        "INSERT INTO tenants (name, domain, state, generation) VALUES "
        "('minus', 'minus.erp.test', 'running', 1), ('lots', 'lots.erp.test', 'running', 1), "
        "('Bad_Name!', 'bad.erp.test', 'running', 1), ('ghost', 'ghost.erp.test', 'running', 1)"
    )
    harness.execute_sql(
        "INSERT INTO tenant_services (tenant_id, service, replicas, memory) "
        "SELECT id, 'a', -1, NULL FROM tenants WHERE name = 'minus' UNION ALL "
        "SELECT id, 'a', 1, 'lots' FROM tenants WHERE name = 'lots' UNION ALL "
        "SELECT id, 'a', 1, NULL FROM tenants WHERE name = 'Bad_Name!' UNION ALL "
        "SELECT id, 'zz', 1, NULL FROM tenants WHERE name = 'ghost'"
    )
    result = harness.apply()
    assert result.errors == {}
    assert len(harness.running("acme")) == 2 and len(harness.running("globex")) == 1

    statuses = {s["tenant"]: s for s in json.loads(harness.cli("status", "--json").stdout)}
    assert statuses["acme"]["phase"] == "Ready" and statuses["globex"]["phase"] == "Ready"
    expected = {
        "minus": ("services.a.replicas", "-1"),
        "lots": ("services.a.memory", "'lots'"),
        "Bad_Name!": ("name", "'Bad_Name!'"),
        "ghost": ("services.zz", "'zz'"),
    }
    for tenant, (field_name, value) in expected.items():
        status = statuses[tenant]
        assert status["phase"] == "Invalid"
        assert f"tenant {tenant!r}" in status["last_error"]
        assert field_name in status["last_error"] and value in status["last_error"], status["last_error"]
    text = harness.cli("status").stdout
    assert "services.a.memory = 'lots'" in text
    assert harness.containers("minus") == [] and harness.containers("ghost") == []


def test_mass_delete_guard_refuses_an_empty_tenants_table(harness: Harness) -> None:
    harness.import_yaml(SMALL)
    assert harness.apply().ok
    before = {c.id for c in harness.containers()}
    harness.execute_sql("DELETE FROM tenants")
    plan = harness.cli("plan")
    assert plan.returncode == 1
    assert "mass delete refused" in plan.stdout and "--allow-mass-delete" in plan.stdout
    result = harness.apply()
    assert not result.ok and "mass delete refused" in result.plan.errors[0]
    assert {c.id for c in harness.containers()} == before
    assert all(c.status == "running" for c in harness.containers())
    statuses = {s["tenant"]: s for s in json.loads(harness.cli("status", "--json").stdout)}
    assert statuses["acme"]["phase"] == "Failed"
    removal = next(c for c in statuses["acme"]["conditions"] if c["type"] == "Removal")
    assert removal["reason"] == "MassDeleteRefused" and "--allow-mass-delete" in removal["message"]
    allowed = harness.cli("apply", "--allow-mass-delete")
    assert allowed.returncode == 0, allowed.stderr
    assert harness.containers() == []


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_serves_metrics_that_promtool_accepts(harness: Harness, tmp_path: Path) -> None:
    import shutil
    import subprocess

    import httpx

    port = _free_port()
    harness.env["RECONCILER_METRICS_ADDR"] = f"127.0.0.1:{port}"
    harness.import_yaml(SMALL)
    harness.start_run(log_path=tmp_path / "run.log")

    expected = (
        "reconciler_pass_duration_seconds_bucket",
        'reconciler_actions_total{action="create",kind="container"} 3.0',
        "reconciler_drift_total",
        'reconciler_tenants{phase="Ready"} 2.0',
        "reconciler_last_success_timestamp_seconds",
    )

    def scraped() -> str:
        # Tenants converge in passes of their own and the per-phase gauge follows at the next resync sweep.
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        ok = re.search(r'^reconciler_passes_total\{result="ok"\} [1-9]', body, re.MULTILINE)
        return body if ok and all(name in body for name in expected) else ""

    body = wait_until(scraped, timeout=30, what="converged tenants in /metrics")
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200

    # A heal shows up as such.
    victim = _by_slot(harness, "acme")[("a", 0)]
    victim.remove(force=True)
    wait_until(
        lambda: (
            "reconciler_heals_total" in (b := httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
            and 'reconciler_heals_total{kind="container"} 1.0' in b
        ),
        timeout=30,
        what="heal counted",
    )
    assert harness.stop_run() == 0
