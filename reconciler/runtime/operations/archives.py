"""Where backup archives live, and the only names the reconciler reads, writes or deletes there.

Used by the backup service (``operations.backups``: write, retention, restore) and the verifier
(``operations.verify``). The reconciler runs as root and ``backups.file_name`` is a column anyone with database
access can edit, so a name is never joined to the backup directory as it is: it must be exactly what
``archive_name`` generates for that row (``<tenant>/<tenant>-<UTC time>-<backup id>.tar.gz``), and the resolved
path (symlinks followed) must sit in ``<backup dir>/<tenant>/``. Anything else raises ``ArchiveRefused``, whose
message names the tenant, the backup and a shortened value; callers refuse the operation and delete nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from desired_state.backups import BackupRecord
from desired_state.inputs import TENANT_NAME_RE
from reconciler.core.errors import PermanentError

ARCHIVE_SUFFIX = ".tar.gz"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_TENANT = TENANT_NAME_RE.pattern.strip("^$")
_ARCHIVE_RE = re.compile(
    rf"^(?P<tenant>{_TENANT})/(?P=tenant)-\d{{8}}T\d{{6}}Z-(?P<id>[1-9][0-9]*){re.escape(ARCHIVE_SUFFIX)}$"
)
# Archives hold a tenant's data: readable by the reconciler's user only, like the directories holding them.
ARCHIVE_MODE = 0o600
DIRECTORY_MODE = 0o700
# How much of a refused value an error quotes (a column can hold anything, up to 255 characters).
QUOTE = 60


class ArchiveRefused(PermanentError):
    """A backup row's file name (or tenant) is not one the reconciler generates: nothing is read or deleted."""


def shorten(value: str) -> str:
    return repr(value if len(value) <= QUOTE else value[: QUOTE - 3] + "...")


def tenant_directory(backup_dir: Path, tenant: str) -> Path:
    """``<backup dir>/<tenant>``, for a valid tenant name only (request rows carry whatever the UI wrote)."""
    if not TENANT_NAME_RE.match(tenant):
        raise ArchiveRefused(
            f"tenant {shorten(tenant)}: not a valid tenant name (lowercase letters, digits and '-'), "
            "so it has no backup directory",
            tenant=None,
        )
    return _inside(backup_dir.resolve(), backup_dir / tenant, f"tenant {tenant!r}: backup directory", tenant)


def archive_name(tenant: str, stamp: str, backup_id: int) -> str:
    """The file name of a new archive, relative to the backup directory (what ``backups.file_name`` holds)."""
    name = f"{tenant}/{tenant}-{stamp}-{backup_id}{ARCHIVE_SUFFIX}"
    if not _ARCHIVE_RE.match(name):
        raise ArchiveRefused(f"tenant {shorten(tenant)}: cannot name an archive {shorten(name)}", tenant=None)
    return name


def archive_path(backup_dir: Path, backup: BackupRecord) -> Path:
    """The archive of ``backup``, confined to ``<backup dir>/<tenant>/``; raises ``ArchiveRefused`` otherwise."""
    name = backup.file_name or ""
    what = f"tenant {backup.tenant!r}: backup {backup.id}: file_name {shorten(name)}"
    match = _ARCHIVE_RE.match(name)
    if match is None:
        raise ArchiveRefused(
            f"{what} is not an archive name the reconciler generates "
            f"(<tenant>/<tenant>-YYYYMMDDTHHMMSSZ-<id>{ARCHIVE_SUFFIX}); refused, nothing read or deleted",
            tenant=backup.tenant,
        )
    if match.group("tenant") != backup.tenant or int(match.group("id")) != backup.id:
        raise ArchiveRefused(
            f"{what} names another tenant's or another backup's archive; refused, nothing read or deleted",
            tenant=backup.tenant,
        )
    directory = tenant_directory(backup_dir, backup.tenant)
    path = directory / Path(name).name
    if path.is_symlink():
        raise ArchiveRefused(f"{what} is a symbolic link; refused, nothing read or deleted", tenant=backup.tenant)
    return _inside(directory, path, what, backup.tenant)


def _inside(directory: Path, path: Path, what: str, tenant: str) -> Path:
    resolved_dir = directory.resolve()
    resolved = path.resolve()
    if resolved.parent != resolved_dir:
        raise ArchiveRefused(
            f"{what} resolves to {shorten(str(resolved))}, outside {resolved_dir}; refused, nothing read or deleted",
            tenant=tenant,
        )
    return resolved


def create_private(path: Path) -> int:
    """Open a new file for writing, readable by the owner only (fails if it exists); returns the descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), ARCHIVE_MODE)


def make_private_directory(path: Path) -> None:
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
