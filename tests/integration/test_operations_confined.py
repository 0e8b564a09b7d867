"""Issue 11: the files the backup service deletes or reads stay inside ``<backup dir>/<tenant>/``.

``backups.file_name`` is a column anyone with database access can edit and the reconciler runs as root: rows
pointing outside the backup directory (a relative escape, an absolute path) must neither be deleted by retention
nor restored, whatever their checksum says. Real Docker, a real PostgreSQL database, the real CLI.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desired_state.backups import finish_backup, get_backup, list_backups, set_policy, start_backup
from desired_state.identity import lookup
from desired_state.operations import list_operations
from tests.integration.harness import Harness
from tests.integration.test_operations import in_volume, make_harness, tenant_yaml

pytestmark = pytest.mark.integration


@pytest.fixture
def confined(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path
) -> Iterator[Harness]:
    h = make_harness(owner_id, postgres_url, docker_client, tmp_path, backup_min_free_mib="1")
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    yield h
    h.rt.engine.dispose()


def planted_row(h: Harness, file_name: str, victim: Path) -> int:
    """A succeeded backup row of the tenant (its uid) whose file name points at ``victim``, with its real checksum."""
    record = start_backup(h.rt.engine, "acme", "manual", None, tenant_uid=lookup(h.rt.engine, "acme").uid)
    finish_backup(
        h.rt.engine,
        record.id,
        status="succeeded",
        file_name=file_name,
        size_bytes=victim.stat().st_size,
        sha256=hashlib.sha256(victim.read_bytes()).hexdigest(),
        duration_seconds=0.1,
    )
    return record.id


def victims(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "outside").mkdir()
    relative = tmp_path / "outside" / "victim.txt"
    relative.write_text("keep me\n")
    absolute = tmp_path / "absolute-victim.txt"
    absolute.write_text("keep me too\n")
    return relative, absolute


def test_retention_never_deletes_outside_the_backup_directory(confined: Harness, tmp_path: Path) -> None:
    h = confined
    relative, absolute = victims(tmp_path)
    escaping = planted_row(h, "../outside/victim.txt", relative)
    rooted = planted_row(h, str(absolute), absolute)
    set_policy(h.rt.engine, "acme", "0 3 * * *", keep=1)

    made = h.cli("backup", "acme")
    assert made.returncode == 0, made.stderr
    assert relative.read_text() == "keep me\n" and absolute.read_text() == "keep me too\n"
    for backup_id in (escaping, rooted):
        row = get_backup(h.rt.engine, backup_id)
        assert row is not None and row.status == "succeeded"  # not marked pruned: nothing was deleted
        assert f"retention left backup {backup_id} alone" in made.stderr
    assert "not an archive name the reconciler generates" in made.stderr
    newest = max(list_backups(h.rt.engine, "acme"), key=lambda b: b.id)
    assert newest.status == "succeeded" and newest.file_name is not None
    archive = Path(h.settings().backup_dir or "") / newest.file_name
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE(archive.parent.stat().st_mode) == 0o700


def test_a_restore_of_such_a_row_is_refused_and_touches_nothing(confined: Harness, tmp_path: Path) -> None:
    h = confined
    relative, absolute = victims(tmp_path)
    Path(h.settings().backup_dir or "").mkdir(parents=True)  # as after the first backup: "../" resolves
    in_volume(h, "echo current > /data/state")
    started = {c.name: c.attrs["State"]["StartedAt"] for c in h.running("acme")}
    for file_name, victim in (("../outside/victim.txt", relative), (str(absolute), absolute)):
        backup_id = planted_row(h, file_name, victim)
        refused = h.cli("restore", "acme", str(backup_id))
        assert refused.returncode == 1
        assert f"tenant 'acme': backup {backup_id}: file_name" in refused.stderr, refused.stderr
        assert "nothing read or deleted" in refused.stderr
    assert relative.read_text() == "keep me\n" and absolute.read_text() == "keep me too\n"
    assert in_volume(h, "cat /data/state", read_only=True).strip() == "current"
    assert {c.name: c.attrs["State"]["StartedAt"] for c in h.running("acme")} == started
    restores = [o for o in list_operations(h.rt.engine, "acme") if o.kind == "restore"]
    assert [o.status for o in restores] == ["failed", "failed"]
