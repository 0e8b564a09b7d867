"""Issue 11, one writer and crash-safe operations: CLI commands that change the world refuse while `reconciler run`
leads (PostgreSQL and SQLite), and rows a dead process left ``running`` are closed as failed by the next writer.
A migration is not started while a helper container of another migration of that service still exists.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from desired_state.backups import get_backup, start_backup
from desired_state.operation_requests import claim_request, create_request, get_request
from desired_state.operations import list_operations, start_operation
from tests.integration.harness import Harness, wait_until
from tests.integration.runs import free_port, metric
from tests.integration.test_operations import make_harness, migrations_log, set_image, tenant_yaml

pytestmark = pytest.mark.integration

CATALOG = 'catalog:\n  a: {image: "erp/demo-svc:1", memory: 16M, cpus: 0.1}\n'
TENANT = CATALOG + "tenants:\n  - name: acme\n    domain: acme.erp.test\n    services:\n      a: {replicas: 1}\n"


def assert_refused_naming(h: Harness, pid: int, *command: str) -> None:
    refused = h.cli(*command)
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert f"refusing `reconciler {' '.join(command[:2]) if command[0] == 'tenants' else command[0]}`" in (
        refused.stderr
    ), refused.stderr
    assert "`reconciler run` on " in refused.stderr and f"/pid {pid}" in refused.stderr, refused.stderr


def test_writers_refuse_while_run_leads_on_postgresql(harness: Harness, tmp_path: Path) -> None:
    h = harness
    h.import_yaml(TENANT)
    port = free_port()
    h.env["RECONCILER_METRICS_ADDR"] = f"127.0.0.1:{port}"
    run = h.start_run(log_path=tmp_path / "run.log")
    wait_until(lambda: metric(port, "reconciler_leader") == 1, timeout=20, what="reconciler run leads")
    for command in (("apply",), ("backup", "acme"), ("rollback", "acme"), ("tenants", "purge", "acme", "--yes")):
        assert_refused_naming(h, run.pid, *command)
    assert h.cli("plan").returncode in (0, 2)  # read-only commands stay allowed
    assert h.cli("status").returncode == 0
    assert h.stop_run() == 0
    applied = h.cli("apply")
    assert applied.returncode == 0, applied.stderr


def test_writers_refuse_while_run_leads_on_sqlite_and_the_lock_dies_with_it(
    owner_id: str, docker_client: Any, demo_images: Any, tmp_path: Path
) -> None:
    h = Harness.create(owner_id, f"sqlite:///{tmp_path / 'one.sqlite3'}", docker_client)
    try:
        h.import_yaml(TENANT)
        h.env["RECONCILER_METRICS_ADDR"] = f"127.0.0.1:{free_port()}"
        run = h.start_run(log_path=tmp_path / "run.log")
        wait_until(lambda: "reconciler running" in (tmp_path / "run.log").read_text(), timeout=20, what="run started")
        assert_refused_naming(h, run.pid, "apply")
        assert "one.sqlite3" in h.cli("apply").stderr
        assert h.cli("status").returncode == 0
        run.kill()  # kill -9: the flock vanishes with the process
        run.wait()
        applied = h.cli("apply")
        assert applied.returncode == 0, applied.stderr
    finally:
        h.stop_run()
        h.rt.engine.dispose()


def plant_abandoned_rows(h: Harness) -> tuple[int, int, int]:
    """What a process killed mid-restore leaves: a running operation, a running backup, a claimed request."""
    engine = h.rt.engine
    operation = start_operation(engine, "acme", "restore", trigger="request")
    backup = start_backup(engine, "acme", "manual", None)
    request = create_request(engine, "acme", "backup")
    assert claim_request(engine, request)
    return operation, backup.id, request


def assert_closed(h: Harness, rows: tuple[int, int, int], found_by: str) -> None:
    operation_id, backup_id, request_id = rows
    operation = next(o for o in list_operations(h.rt.engine, "acme") if o.id == operation_id)
    assert operation.status == "failed" and operation.finished_at is not None
    assert "abandoned" in (operation.error or "") and found_by in (operation.error or "")
    assert "partly restored" in (operation.error or "")
    backup = get_backup(h.rt.engine, backup_id)
    assert backup is not None and backup.status == "failed" and "no archive was kept" in (backup.error or "")
    request = get_request(h.rt.engine, request_id)
    assert request is not None and request.status == "failed" and request.done_at is not None


def test_the_next_cli_writer_closes_rows_a_dead_process_left_running(ops_harness: Harness) -> None:
    h = ops_harness
    h.import_yaml(tenant_yaml(h))
    rows = plant_abandoned_rows(h)
    applied = h.cli("apply")
    assert applied.returncode == 0, applied.stderr
    assert_closed(h, rows, "`reconciler apply`")
    assert "closed as failed" in applied.stderr
    # The restore hold is gone with its row: the pass started the tenant.
    assert len(h.running("acme")) == 1


def test_the_next_leader_closes_rows_a_dead_process_left_running(ops_harness: Harness, tmp_path: Path) -> None:
    h = ops_harness
    h.import_yaml(tenant_yaml(h))
    rows = plant_abandoned_rows(h)
    h.start_run(log_path=tmp_path / "run.log")
    wait_until(lambda: len(h.running("acme")) == 1, timeout=30, what="the tenant started by the new leader")
    assert_closed(h, rows, "`reconciler run`")
    assert h.stop_run() == 0


def test_a_migration_waits_while_a_helper_of_another_still_exists(ops_harness: Harness) -> None:
    h = ops_harness
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    # A migration helper the dead process started: Docker keeps it running after its parent died.
    leftover = h.docker_client.containers.run(
        "erp/busybox:local",
        ["sleep", "300"],
        name=f"{h.owner}-acme-a-migrate-deadbeef",
        labels={
            "tenant-reconciler.owner": h.owner,
            "tenant-reconciler.tenant": "acme",
            "tenant-reconciler.role": "migrate",
        },
        network_mode="none",
        detach=True,
    )
    set_image(h, "erp/demo-svc:2")
    waiting = h.apply()
    assert "acme" in waiting.errors and f"{h.owner}-acme-a-migrate-deadbeef (running)" in waiting.errors["acme"]
    assert migrations_log(h) == []
    assert [o.status for o in list_operations(h.rt.engine, "acme", kind="migrate")] == []
    served = [c.image.tags[0] for c in h.running("acme") if c.name != leftover.name]
    assert served == ["erp/demo-svc:1"]  # the old version serves
    leftover.remove(force=True)
    time.sleep(0.2)
    assert h.apply().ok
    assert len(migrations_log(h)) == 1
    assert json.loads(h.cli("status", "--json").stdout)[0]["phase"] == "Ready"


@pytest.fixture
def ops_harness(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path) -> Any:
    h = make_harness(owner_id, postgres_url, docker_client, tmp_path, backup_min_free_mib="1")
    yield h
    h.stop_run()
    h.rt.engine.dispose()
