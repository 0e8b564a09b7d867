"""Backup retention (pure): which archives to delete after a new one succeeded.

Called by the runtime's backup service right after a backup of the tenant succeeded, never after a failure, so a
tenant whose backups keep failing keeps its old archives. Only succeeded backups count; the ``keep`` newest are
kept, and backups still needed elsewhere (the pre-upgrade backup a pin points at) are never pruned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class BackupEntry:
    id: int
    status: str
    finished_at: datetime | None


def to_prune(backups: Iterable[BackupEntry], keep: int, protected: frozenset[int] = frozenset()) -> list[int]:
    """Ids of succeeded backups beyond the ``keep`` newest (at least the newest one is always kept), oldest last."""
    succeeded = [b for b in backups if b.status == "succeeded"]
    # Newest first: by finish time, then id (ids grow with time and break ties between equal timestamps).
    succeeded.sort(key=lambda b: (b.finished_at is not None, b.finished_at or datetime.min, b.id), reverse=True)
    return [b.id for b in succeeded[max(keep, 1) :] if b.id not in protected]
