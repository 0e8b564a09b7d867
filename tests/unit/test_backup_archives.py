"""Backup archive names and paths (``runtime.operations.archives``) on a real directory: only the names the
reconciler generates are ever resolved, and never to a place outside the tenant's backup directory."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from desired_state.backups import BackupRecord
from reconciler.runtime.operations.archives import (
    ArchiveRefused,
    archive_name,
    archive_path,
    create_private,
    tenant_directory,
)


def row(file_name: str | None, tenant: str = "acme", backup_id: int = 7) -> BackupRecord:
    now = datetime.now(UTC)
    return BackupRecord(
        id=backup_id,
        tenant=tenant,
        status="succeeded",
        trigger="manual",
        file_name=file_name,
        size_bytes=1,
        sha256="0" * 64,
        started_at=now,
        finished_at=now,
        duration_seconds=0.1,
        error=None,
        created_at=now,
    )


def test_a_generated_name_resolves_inside_the_tenant_directory(tmp_path: Path) -> None:
    name = archive_name("acme", "20261201T101500Z", 7)
    assert name == "acme/acme-20261201T101500Z-7.tar.gz"
    assert archive_path(tmp_path, row(name)) == (tmp_path / "acme" / "acme-20261201T101500Z-7.tar.gz").resolve()


@pytest.mark.parametrize(
    ("file_name", "tenant", "backup_id", "why"),
    [
        ("../outside/victim.txt", "acme", 7, "not an archive name"),
        ("/etc/passwd", "acme", 7, "not an archive name"),
        ("acme/../../outside/acme-20261201T101500Z-7.tar.gz", "acme", 7, "not an archive name"),
        ("acme/acme-20261201T101500Z-7.tar.gz/../x", "acme", 7, "not an archive name"),
        ("", "acme", 7, "not an archive name"),
        ("beta/beta-20261201T101500Z-7.tar.gz", "acme", 7, "another tenant's or another backup's"),
        ("acme/acme-20261201T101500Z-8.tar.gz", "acme", 7, "another tenant's or another backup's"),
        ("x" * 255, "acme", 7, "not an archive name"),
    ],
)
def test_anything_else_is_refused_with_the_row_named(
    tmp_path: Path, file_name: str, tenant: str, backup_id: int, why: str
) -> None:
    with pytest.raises(ArchiveRefused, match=why) as info:
        archive_path(tmp_path, row(file_name, tenant, backup_id))
    message = str(info.value)
    assert f"tenant {tenant!r}: backup {backup_id}" in message and "nothing read or deleted" in message
    assert len(message) < 400  # a long value is shortened


def test_a_symlinked_tenant_directory_or_archive_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "acme-20261201T101500Z-7.tar.gz").write_text("victim")
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "acme").symlink_to(outside)
    with pytest.raises(ArchiveRefused, match="outside"):
        archive_path(backups, row("acme/acme-20261201T101500Z-7.tar.gz"))
    (backups / "acme").unlink()
    (backups / "acme").mkdir()
    (backups / "acme" / "acme-20261201T101500Z-7.tar.gz").symlink_to(outside / "acme-20261201T101500Z-7.tar.gz")
    with pytest.raises(ArchiveRefused, match="symbolic link"):
        archive_path(backups, row("acme/acme-20261201T101500Z-7.tar.gz"))


@pytest.mark.parametrize("tenant", ["..", "../etc", "a/b", "", "Acme"])
def test_a_bad_tenant_name_has_no_directory(tmp_path: Path, tenant: str) -> None:
    with pytest.raises(ArchiveRefused, match="not a valid tenant name"):
        tenant_directory(tmp_path, tenant)
    with pytest.raises(ArchiveRefused):
        archive_name(tenant, "20261201T101500Z", 1)


def test_archives_are_created_owner_only_and_never_over_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "a.partial"
    os.close(create_private(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_private(target)
