"""Issue 11, tenant identity: a reused tenant name never adopts the former tenant's data; a lost volume is not
recreated empty without a word.

Real Docker (demo images, busybox helpers to read and write volumes) and a real database per test: PostgreSQL,
and SQLite too for the reused-name case of the issue. The tenant is set absent, its row deleted, and a new row
with the same name created, as the web UI does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from desired_state.identity import read_bindings
from desired_state.model import TenantStatus
from desired_state.operations import list_operations
from desired_state.status import read_status
from desired_state.tables import Tenant
from reconciler.runtime.telemetry.alerts import Alerter
from tests.integration.harness import Harness

pytestmark = pytest.mark.integration

BUSYBOX = "erp/busybox:local"
SECRET = "old-customer-secret"


def tenant_yaml(h: Harness, state: str = "running") -> str:
    return (
        'catalog:\n  a: {image: "erp/demo-svc:1", memory: 32M, cpus: 0.25}\n'
        f"tenants:\n  - name: acme\n    domain: acme.{h.owner}.erp.test\n    state: {state}\n"
        "    services:\n      a: {replicas: 1}\n"
    )


def in_volume(h: Harness, script: str) -> str:
    output = h.docker_client.containers.run(
        BUSYBOX,
        ["sh", "-c", script],
        volumes={volume(h): {"bind": "/data", "mode": "rw"}},
        labels={"tenant-reconciler.owner": h.owner},
        network_mode="none",
        remove=True,
    )
    return output.decode() if isinstance(output, bytes) else str(output)


def volume(h: Harness) -> str:
    return f"{h.owner}-acme-data"


def uid_of(h: Harness) -> str | None:
    with h.rt.engine.connect() as connection:
        return connection.execute(select(Tenant.uid).where(Tenant.name == "acme")).scalar_one_or_none()


def status(h: Harness) -> TenantStatus:
    found = read_status(h.rt.engine, "acme")
    assert found is not None
    return found


def reuse_the_name(h: Harness) -> str:
    """The issue's scenario: a tenant with data, set absent, its row deleted, a new tenant with the same name.
    Returns the former tenant's uid."""
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    assert h.apply().ok  # the volume, seen, is bound to the tenant's uid
    old_uid = uid_of(h)
    assert old_uid is not None
    in_volume(h, f"echo {SECRET} > /data/secret.txt")
    h.import_yaml(tenant_yaml(h, "absent"))
    assert h.apply(allow_mass_delete=True).ok
    h.execute_sql("DELETE FROM tenants WHERE name = 'acme'")
    assert h.apply(allow_mass_delete=True).ok
    assert h.containers("acme") == [] and volume(h) in h.volume_names()
    # Later, in another process: the mass-delete window of this one does not count.
    h.rt.engine.dispose()
    h.rebuild()
    h.import_yaml(tenant_yaml(h))  # a new customer, same name
    return old_uid


def assert_held_for_foreign_data(h: Harness, old_uid: str) -> None:
    result = h.apply()
    assert result.ok, result.errors
    assert result.applied == [], result.applied
    assert h.containers("acme") == [], "the new tenant must never mount the former tenant's volume"
    assert h.network("acme") is None, "a held tenant gets no change on any layer"
    new_uid = uid_of(h)
    assert new_uid is not None and new_uid != old_uid
    held = status(h)
    data = held.condition("Data")
    assert held.phase == "Failed" and data is not None, held
    assert (data.status, data.reason) == ("False", "ForeignData")
    assert old_uid in data.message and "reconciler tenants adopt acme --yes" in data.message
    assert "reconciler tenants purge acme --yes" in data.message


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db(
    request: pytest.FixtureRequest, owner_id: str, docker_client: Any, demo_images: Any, tmp_path: Path
) -> Iterator[Harness]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/i.db"
    h = Harness.create(owner_id, url, docker_client, backup_dir=str(tmp_path / "backups"), backup_min_free_mib="1")
    yield h
    h.rt.engine.dispose()


@pytest.fixture
def pg(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = Harness.create(
        owner_id, postgres_url, docker_client, backup_dir=str(tmp_path / "backups"), backup_min_free_mib="1"
    )
    yield h
    h.rt.engine.dispose()


def test_a_reused_name_is_held_then_adopts_the_old_data_on_request(any_db: Harness) -> None:
    h = any_db
    old_uid = reuse_the_name(h)
    assert_held_for_foreign_data(h, old_uid)

    unconfirmed = h.cli("tenants", "adopt", "acme")
    assert unconfirmed.returncode == 1 and "--yes" in unconfirmed.stderr, unconfirmed
    assert h.apply().applied == [] and h.containers("acme") == []

    adopted = h.cli("tenants", "adopt", "acme", "--yes")
    assert adopted.returncode == 0, adopted.stderr
    assert h.apply().ok
    (container,) = h.running("acme")
    assert [m["Name"] for m in container.attrs["Mounts"]] == [volume(h)]
    assert in_volume(h, "cat /data/secret.txt").strip() == SECRET
    converged = status(h)
    assert converged.phase == "Ready" and converged.condition("Data") is None, converged
    assert read_bindings(h.rt.engine)[volume(h)].uid == uid_of(h)
    assert [o.kind for o in list_operations(h.rt.engine, "acme", "adopt")] == ["adopt"]


def test_a_reused_name_purged_on_request_starts_on_an_empty_volume(any_db: Harness) -> None:
    h = any_db
    old_uid = reuse_the_name(h)
    assert_held_for_foreign_data(h, old_uid)

    purged = h.cli("tenants", "purge", "acme", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert h.apply().ok
    assert h.apply().ok  # the new volume, seen, is bound
    (container,) = h.running("acme")
    assert [m["Name"] for m in container.attrs["Mounts"]] == [volume(h)]
    assert in_volume(h, "ls -A /data").strip() == ""
    labels = h.docker_client.volumes.get(volume(h)).attrs["Labels"]
    new_uid = uid_of(h)
    assert labels["tenant-reconciler.tenant-uid"] == new_uid
    binding = read_bindings(h.rt.engine)[volume(h)]
    assert (binding.uid, binding.state) == (new_uid, "bound")
    assert status(h).phase == "Ready"


def test_backups_of_the_former_tenant_are_invisible_to_the_new_one(pg: Harness) -> None:
    h = pg
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    in_volume(h, f"echo {SECRET} > /data/secret.txt")
    made = h.cli("backup", "acme")
    assert made.returncode == 0, made.stderr
    (old,) = json.loads(h.cli("backups", "acme", "--json").stdout)
    assert old["tenant_uid"] == uid_of(h)
    old_uid = reuse_the_name(h)
    assert h.apply().ok  # the new tenant gets its uid (and is held)

    assert json.loads(h.cli("backups", "acme", "--json").stdout) == []
    restore = h.cli("restore", "acme", str(old["id"]))
    assert restore.returncode == 1 and old_uid in restore.stderr, restore
    backup = h.cli("backup", "acme")
    assert backup.returncode == 1 and "belongs to uid" in backup.stderr, backup
    assert h.containers("acme") == []

    assert h.cli("tenants", "adopt", "acme", "--yes").returncode == 0
    (visible,) = [b for b in json.loads(h.cli("backups", "acme", "--json").stdout) if b["status"] == "succeeded"]
    assert visible["id"] == old["id"] and visible["tenant_uid"] == uid_of(h)


def test_a_lost_volume_is_held_with_one_alert_until_recreated_on_request(pg: Harness) -> None:
    h = pg
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    assert h.apply().ok
    assert read_bindings(h.rt.engine)[volume(h)].state == "bound"
    for container in h.containers("acme"):
        container.remove(force=True)
    h.docker_client.volumes.get(volume(h)).remove()

    sent: list[str] = []
    alerts = Alerter(sent.append)
    alerts.start()
    h.rt.reconciler.on_status = alerts.on_status
    try:
        for _ in range(3):
            result = h.apply()
            assert result.ok and result.applied == [], result.applied
    finally:
        alerts.stop()
    assert h.containers("acme") == [] and volume(h) not in h.volume_names(), "never recreated empty silently"
    held = status(h)
    data = held.condition("Data")
    assert held.phase == "Failed" and data is not None and data.reason == "DataVolumeLost", held
    assert "reconciler tenants recreate-volume acme --yes" in data.message
    assert len([m for m in sent if "DataVolumeLost" in m]) == 1, sent

    assert h.cli("tenants", "recreate-volume", "acme").returncode == 1
    recreated = h.cli("tenants", "recreate-volume", "acme", "--yes")
    assert recreated.returncode == 0, recreated.stderr
    assert h.apply().ok
    assert len(h.running("acme")) == 1 and volume(h) in h.volume_names()
    assert status(h).phase == "Ready"
    assert [o.kind for o in list_operations(h.rt.engine, "acme", "recreate-volume")] == ["recreate-volume"]
