"""Issue 12: operation requests of different tenants run concurrently, by priority then age, one per tenant.

Real Docker, a real PostgreSQL database per test, real backups and restores. A long restore is made real with a
helper image whose entrypoint holds a restore (a command naming the ``.restore-N`` staging directory) until the test
drops a file into the tenant's volume; backups pass straight through. No timed assertions: orders and timestamps of
the rows only.
"""

from __future__ import annotations

import io
import itertools
import tarfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from desired_state.operation_requests import RequestRecord, create_request, get_request
from desired_state.operations import OperationRecord, list_operations
from reconciler.runtime.operations.request_pool import RequestPool
from reconciler.runtime.operations.requests import carry_out
from reconciler.runtime.operations.tenant_ops import TenantOps
from tests.integration.harness import Harness, wait_until

pytestmark = pytest.mark.integration

GATED_HELPER = "erp/gated-helper:test"
GATE = """#!/bin/sh
# A restore (its command names the staging directory .restore-N) waits for /data/.go; anything else runs at once.
case "$*" in *.restore-*) while [ ! -e /data/.go ]; do sleep 0.2; done ;; esac
exec "$@"
"""
DOCKERFILE = f'FROM erp/busybox:local\nCOPY gate /gate\nENTRYPOINT ["/gate"]\nLABEL erp.test="{GATED_HELPER}"\n'
TENANTS = ("acme", "beta", "gamma")


def tenants_yaml(h: Harness, names: tuple[str, ...] = TENANTS) -> str:
    tenants = "".join(
        f"  - name: {name}\n    domain: {name}.{h.owner}.erp.test\n    services:\n      a: {{}}\n" for name in names
    )
    return 'catalog:\n  a: {image: "erp/demo-svc:1", memory: 32M, cpus: 0.25}\ntenants:\n' + tenants


@pytest.fixture(scope="session")
def gated_helper(docker_client: Any, demo_images: Any) -> str:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, body, mode in (("Dockerfile", DOCKERFILE, 0o644), ("gate", GATE, 0o755)):
            data = body.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    docker_client.images.build(fileobj=context, custom_context=True, tag=GATED_HELPER, pull=False, rm=True)
    return GATED_HELPER


def harness(owner_id: str, postgres_url: str, docker_client: Any, tmp_path: Path, **settings: str) -> Harness:
    return Harness.create(
        owner_id,
        postgres_url,
        docker_client,
        backup_dir=str(tmp_path / "backups"),
        backup_min_free_mib="1",
        operation_poll_interval="0.5",
        **settings,
    )


@pytest.fixture
def gated(owner_id: str, docker_client: Any, gated_helper: str, postgres_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = harness(
        owner_id,
        postgres_url,
        docker_client,
        tmp_path,
        backup_helper_image=gated_helper,
        operation_concurrency="2",
        operation_shutdown_grace="1",
    )
    h.import_yaml(tenants_yaml(h, ("acme", "beta")))
    assert h.apply().ok
    yield h
    h.stop_run()
    h.rt.engine.dispose()


def ops(h: Harness) -> TenantOps:
    assert h.rt.operations is not None
    return h.rt.operations


def open_gate(h: Harness, tenant: str) -> None:
    h.docker_client.containers.run(
        "erp/busybox:local",
        ["touch", "/data/.go"],
        volumes={f"{h.owner}-{tenant}-data": {"bind": "/data", "mode": "rw"}},
        labels={"tenant-reconciler.owner": h.owner},
        network_mode="none",
        remove=True,
    )


def answered(h: Harness, request_id: int, what: str, timeout: float = 90) -> RequestRecord:
    def check() -> RequestRecord | None:
        r = get_request(h.rt.engine, request_id)
        return r if r is not None and r.status in ("succeeded", "failed") else None

    return wait_until(check, timeout=timeout, what=what)


def operation_of(h: Harness, request_id: int) -> OperationRecord:
    found = [o for o in list_operations(h.rt.engine) if o.request_id == request_id]
    assert len(found) == 1, (request_id, found)
    return found[0]


def test_a_long_restore_of_one_tenant_does_not_delay_another_tenants_backup(gated: Harness, tmp_path: Path) -> None:
    h = gated
    backup = ops(h).backup("acme", "manual")
    restore_a = create_request(h.rt.engine, "acme", "restore", backup_id=backup.id)
    backup_b = create_request(h.rt.engine, "beta", "backup")
    log = tmp_path / "run.log"
    h.start_run(log_path=log)

    b = answered(h, backup_b, "beta's backup answered while acme's restore is held")
    assert b.status == "succeeded", (b.error, log.read_text()[-3000:])
    a = get_request(h.rt.engine, restore_a)
    assert a is not None and a.status == "running"  # held at its gate: it cannot have finished
    wait_until(lambda: operation_of(h, restore_a).status == "running", what="acme's restore at its gate")

    open_gate(h, "acme")
    a = answered(h, restore_a, "acme's restore answered once its gate opened")
    assert a.status == "succeeded", (a.error, log.read_text()[-3000:])
    backup_op, restore_op = operation_of(h, backup_b), operation_of(h, restore_a)
    assert backup_op.status == "succeeded" and restore_op.status == "succeeded"
    # Both claimed in one poll, acme's first (same priority, older); beta's backup ran and ended inside acme's restore.
    assert a.picked_at and b.picked_at and b.done_at and a.done_at
    assert a.picked_at <= b.picked_at < b.done_at < a.done_at
    assert backup_op.finished_at and restore_op.finished_at and backup_op.finished_at < restore_op.finished_at
    assert h.stop_run() == 0


def test_shutdown_leaves_a_running_request_to_the_next_leaders_recovery(gated: Harness, tmp_path: Path) -> None:
    h = gated
    backup = ops(h).backup("acme", "manual")
    restore_a = create_request(h.rt.engine, "acme", "restore", backup_id=backup.id)
    h.start_run(log_path=tmp_path / "run-1.log")
    wait_until(
        lambda: any(o.kind == "restore" and o.status == "running" for o in list_operations(h.rt.engine, "acme")),
        timeout=60,
        what="acme's restore running (held at its gate)",
    )
    assert h.stop_run() == 0  # SIGTERM: the grace (1 s) passes, the row stays for recovery
    left = get_request(h.rt.engine, restore_a)
    assert left is not None and left.status == "running"
    assert "still running at shutdown" in (tmp_path / "run-1.log").read_text()

    h.start_run(log_path=tmp_path / "run-2.log")
    closed = answered(h, restore_a, "the next leader closing the abandoned request")
    assert closed.status == "failed"
    assert closed.error is not None and closed.error.startswith("abandoned: the process running this restore ended")
    assert closed.error.endswith("ask again if it is still wanted")
    open_gate(h, "acme")  # lets the orphaned helper end; the fixture removes what is left
    assert h.stop_run() == 0


@pytest.fixture
def one_slot(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path
) -> Iterator[Harness]:
    h = harness(owner_id, postgres_url, docker_client, tmp_path, operation_concurrency="1")
    h.import_yaml(tenants_yaml(h))
    assert h.apply().ok
    yield h
    h.rt.engine.dispose()


def test_with_one_slot_a_later_request_with_higher_priority_runs_first(one_slot: Harness) -> None:
    h = one_slot
    engine = h.rt.engine
    acme = create_request(engine, "acme", "backup")
    beta = create_request(engine, "beta", "backup")
    gamma = create_request(engine, "gamma", "backup", priority=5)
    acme_again = create_request(engine, "acme", "backup")
    # `reconciler requests`, the one-shot command: the same pool, waiting for all.
    result = h.cli("requests")
    assert result.returncode == 0, result.stderr
    assert "4 request(s) carried out" in result.stdout
    operations = sorted((operation_of(h, r) for r in (acme, beta, gamma, acme_again)), key=lambda o: o.id)
    assert [o.request_id for o in operations] == [gamma, acme, beta, acme_again]
    assert all(o.status == "succeeded" for o in operations)
    for earlier, later in itertools.pairwise(operations):
        assert earlier.finished_at and later.started_at and earlier.finished_at <= later.started_at


def test_two_requests_of_one_tenant_never_overlap(one_slot: Harness) -> None:
    h = one_slot
    engine = h.rt.engine
    first = create_request(engine, "acme", "backup")
    second = create_request(engine, "acme", "backup", priority=9)
    third = create_request(engine, "acme", "backup")
    others = [create_request(engine, "beta", "backup"), create_request(engine, "gamma", "backup")]
    hostile = create_request(engine, "beta", "backup")
    h.execute_sql("UPDATE operation_requests SET priority = 1000 WHERE id = :id", id=hostile)

    # Three slots: beta's and gamma's run beside acme's, acme's one after the other.
    assert RequestPool(engine, partial(carry_out, ops(h)), 3).drain() == 6
    refused = get_request(engine, hostile)
    assert refused is not None and refused.status == "failed"
    assert refused.error == (
        f"request {hostile} of tenant 'beta': field priority = 1000 is not an integer from -100 to 100 "
        "(higher runs first; default 0)"
    )
    acme = [operation_of(h, r) for r in (first, second, third)]
    assert all(o.status == "succeeded" for o in acme)
    assert [o.id for o in acme] == sorted(o.id for o in acme)  # a tenant's requests in the order they were made
    for earlier, later in itertools.pairwise(acme):
        assert earlier.finished_at and later.started_at and earlier.finished_at <= later.started_at
    assert all(operation_of(h, r).status == "succeeded" for r in others)
