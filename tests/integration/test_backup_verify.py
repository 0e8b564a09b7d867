"""Issue 11, backups proven restorable: the newest backup of a tenant restored into a scratch volume by a helper
container and compared; a corrupted archive fails, alerts once, and the outcome is on the ``backups`` row.
Real Docker (busybox helper), a real PostgreSQL database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desired_state.backups import get_backup
from reconciler.runtime.operations.backup_schedule import VERIFY_JOB, BackupSchedule
from reconciler.runtime.service.scheduler import Scheduler
from tests.integration.harness import Harness
from tests.integration.test_operations import in_volume, make_harness, ops, tenant_yaml

pytestmark = pytest.mark.integration


@pytest.fixture
def verifying(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path
) -> Iterator[Harness]:
    h = make_harness(
        owner_id, postgres_url, docker_client, tmp_path, backup_min_free_mib="1", backup_verify_schedule="0 4 * * *"
    )
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    in_volume(
        h,
        "mkdir -p /data/docs && echo invoice > /data/docs/a.txt && head -c 200000 /dev/urandom > /data/blob && "
        "ln -s docs/a.txt /data/link && ln /data/blob /data/blob-hardlink",
    )
    yield h
    h.rt.engine.dispose()


def scratch_volumes(h: Harness) -> list[str]:
    return sorted(name for name in h.volume_names() if "-verify-" in name)


def test_the_newest_backup_is_restored_into_a_scratch_volume_and_compared(verifying: Harness) -> None:
    h = verifying
    ops(h).backup("acme")
    newest = ops(h).backup("acme")
    alerts: list[str] = []
    ops(h).relay.target = alerts.append
    (outcome,) = ops(h).verifier.verify_all()
    assert outcome.ok, outcome.error
    assert (outcome.backup_id, outcome.files, outcome.size) == (newest.id, 3, 200000 * 2 + len("invoice\n"))
    row = get_backup(h.rt.engine, newest.id)
    assert row is not None and row.verify_status == "succeeded" and row.verified_at is not None
    assert row.verify_error is None
    assert alerts == [] and scratch_volumes(h) == []
    assert in_volume(h, "cat /data/docs/a.txt", read_only=True).strip() == "invoice"  # the tenant's data untouched


def test_a_corrupted_backup_fails_verification_and_alerts_once(verifying: Harness) -> None:
    h = verifying
    record = ops(h).backup("acme")
    assert record.file_name is not None
    archive = Path(h.settings().backup_dir or "") / record.file_name
    alerts: list[str] = []
    ops(h).relay.target = alerts.append

    # Flipped byte: the checksum no longer matches.
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    (outcome,) = ops(h).verifier.verify_all()
    assert not outcome.ok and "checksum" in (outcome.error or "")

    # Truncated, with the row's checksum and size updated to match: only restoring it shows it is broken.
    truncated = bytes(data[: len(data) // 2])
    archive.write_bytes(truncated)
    h.execute_sql(
        "UPDATE backups SET sha256 = :sha, size_bytes = :size WHERE id = :id",
        sha=hashlib.sha256(truncated).hexdigest(),
        size=len(truncated),
        id=record.id,
    )
    (outcome,) = ops(h).verifier.verify_all()
    assert not outcome.ok and "restoring into a scratch volume failed" in (outcome.error or ""), outcome.error
    row = get_backup(h.rt.engine, record.id)
    assert row is not None and row.verify_status == "failed" and row.verified_at is not None
    assert f"backup {record.id} is not restorable" in (row.verify_error or "")
    assert len(alerts) == 1 and f"backup {record.id} is not restorable" in alerts[0], alerts
    assert scratch_volumes(h) == []


def test_verification_is_scheduled_from_the_setting(verifying: Harness) -> None:
    scheduler = Scheduler()
    BackupSchedule(ops(verifying), scheduler).register()
    assert VERIFY_JOB in scheduler.jobs()
