"""Tenant identity: each tenant's stable uid, and which uid each data volume (and backup) belongs to.

A tenant name can be reused: the UI deletes a tenant's row and later creates a new one with the same name. The
new row gets a new uid, so the data volume and the backups of the old tenant (bound to the old uid) are never
handed to the new customer without an operator's explicit ``reconciler tenants adopt``.

Called by the pass (``runtime.passes.reconcile``: uids assigned and bindings read before planning, the bindings
the plan asks for written after it), by the backup service (backups stamped with the uid, listed and restored by
uid) and by the identity commands (``runtime.operations.identity``: adopt, purge, recreate-volume). The pure rules
that decide are in ``reconciler.planning.identity``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from desired_state.backups import BackupRecord, list_backups
from desired_state.model import VolumeBinding
from desired_state.tables import BackupRow, DataVolumeRow, Tenant

log = logging.getLogger("reconciler.identity")


def new_uid() -> str:
    return uuid.uuid4().hex


def assign_uids(engine: Engine) -> dict[str, str]:
    """Give every tenant row without a uid a new one (the start of every apply and run pass); name → new uid."""
    with engine.begin() as connection:
        rows = connection.execute(select(Tenant.id, Tenant.name).where(Tenant.uid.is_(None))).all()
        assigned: dict[str, str] = {}
        for tenant_id, name in rows:
            uid = new_uid()
            # A pass running beside this one may have given it a uid in between: then that one stays.
            done = connection.execute(
                update(Tenant).where(Tenant.id == tenant_id, Tenant.uid.is_(None)).values(uid=uid)
            ).rowcount
            if done:
                assigned[str(name)] = uid
    for name, uid in sorted(assigned.items()):
        log.info("tenant=%s given uid %s", name, uid, extra={"tenant": name})
    return assigned


@dataclass(frozen=True)
class TenantIdentity:
    """A tenant as its row says: whether the row exists, and its uid (None: not assigned yet)."""

    tenant: str
    exists: bool
    uid: str | None


def lookup(engine: Engine, tenant: str) -> TenantIdentity:
    with engine.connect() as connection:
        row = connection.execute(select(Tenant.uid).where(Tenant.name == tenant)).first()
    return TenantIdentity(tenant, row is not None, row[0] if row is not None else None)


def ensure_uid(engine: Engine, tenant: str) -> TenantIdentity:
    """``lookup``, after giving the row a uid if it has none (for commands that act on the tenant's data)."""
    found = lookup(engine, tenant)
    if found.exists and found.uid is None:
        assign_uids(engine)
        found = lookup(engine, tenant)
    return found


def _binding(row: Any) -> VolumeBinding:
    return VolumeBinding(row.volume, row.tenant, row.tenant_uid, row.state, row.created_at)


def read_bindings(engine: Engine) -> dict[str, VolumeBinding]:
    """Every live binding (pending or bound), by volume name."""
    query = select(DataVolumeRow).where(DataVolumeRow.state != "retired")
    with engine.connect() as connection:
        return {row.volume: _binding(row) for row in connection.execute(query)}


def binding_of(engine: Engine, volume: str) -> VolumeBinding | None:
    return read_bindings(engine).get(volume)


def _live(connection: Connection, volume: str) -> Any:
    query = select(DataVolumeRow).where(DataVolumeRow.volume == volume, DataVolumeRow.state != "retired")
    return connection.execute(query).first()


def _insert(connection: Connection, binding: VolumeBinding, now: datetime, note: str | None = None) -> None:
    values = {
        "volume": binding.volume,
        "tenant": binding.tenant,
        "tenant_uid": binding.uid,
        "state": binding.state,
        "note": note,
        "created_at": now,
        "updated_at": now,
    }
    connection.execute(insert(DataVolumeRow).values(values))


def _stamp_backups(connection: Connection, tenant: str, uid: str, *, only_unstamped: bool) -> int:
    unstamped = BackupRow.tenant_uid.is_(None)
    condition = unstamped if only_unstamped else or_(unstamped, BackupRow.tenant_uid != uid)
    result = connection.execute(
        update(BackupRow)
        .where(BackupRow.tenant == tenant, condition)
        .values(tenant_uid=uid, updated_at=datetime.now(UTC))
    )
    return int(result.rowcount or 0)


def record_bindings(engine: Engine, bindings: Iterable[VolumeBinding]) -> None:
    """Write what the plan asks for: new bindings, pending ones now bound. A live binding of another uid is never
    replaced here (only ``adopt_data`` does that). A legacy binding also stamps the tenant's unstamped backups."""
    for binding in bindings:
        try:
            with engine.begin() as connection:
                _record(connection, binding)
        except IntegrityError:
            # A pass running beside this one recorded the volume first: its binding stands, the next pass sees it.
            log.debug("data volume %s: binding recorded by another pass", binding.volume)


def _record(connection: Connection, binding: VolumeBinding) -> None:
    now = datetime.now(UTC)
    row = _live(connection, binding.volume)
    if row is not None and row.tenant_uid != binding.uid:
        log.error("data volume %s is bound to uid %s, not rebound to %s", binding.volume, row.tenant_uid, binding.uid)
        return
    if row is not None:
        if row.state != binding.state:
            connection.execute(
                update(DataVolumeRow).where(DataVolumeRow.id == row.id).values(state=binding.state, updated_at=now)
            )
        return
    note = "bound once to the tenant of its name: it predates tenant uids" if binding.legacy else None
    _insert(connection, binding, now, note)
    stamped = _stamp_backups(connection, binding.tenant, binding.uid, only_unstamped=True) if binding.legacy else 0
    log.info(
        "tenant=%s data volume %s bound to uid %s (%s%s)",
        binding.tenant,
        binding.volume,
        binding.uid,
        note or binding.state,
        f", {stamped} older backup(s) with it" if stamped else "",
        extra={"tenant": binding.tenant},
    )


def retire_binding(engine: Engine, volume: str, note: str) -> VolumeBinding | None:
    """End the live binding of ``volume`` (kept as history with ``note``); the binding that was live, if any."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        row = _live(connection, volume)
        if row is None:
            return None
        connection.execute(
            update(DataVolumeRow)
            .where(DataVolumeRow.id == row.id)
            .values(state="retired", note=note, retired_at=now, updated_at=now)
        )
    return _binding(row)


@dataclass(frozen=True)
class Adoption:
    previous_uid: str | None  # the uid the volume was bound to (None: no binding, e.g. only a uid label)
    backups: int  # backups rebound to the new uid


def adopt_data(engine: Engine, tenant: str, volume: str, uid: str, *, exists: bool) -> Adoption:
    """Bind ``volume`` (bound when it ``exists`` in Docker, else pending) and every backup of ``tenant``'s name to
    ``uid``, in one transaction: the old binding is retired, not deleted."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        row = _live(connection, volume)
        previous = row.tenant_uid if row is not None else None
        if row is not None:
            connection.execute(
                update(DataVolumeRow)
                .where(DataVolumeRow.id == row.id)
                .values(state="retired", note=f"adopted by uid {uid}", retired_at=now, updated_at=now)
            )
        binding = VolumeBinding(volume, tenant, uid, "bound" if exists else "pending")
        _insert(connection, binding, now, f"adopted from uid {previous}" if previous else "adopted")
        backups = _stamp_backups(connection, tenant, uid, only_unstamped=False)
    return Adoption(previous, backups)


def backups_of(engine: Engine, tenant: str, statuses: Iterable[str] | None = None) -> list[BackupRecord]:
    """The backups a tenant may see: those of its uid. A tenant without a row any more: every backup of the
    name (its history, for the operator); a row without a uid yet: only backups older than uids."""
    identity = lookup(engine, tenant)
    records = list_backups(engine, tenant, statuses)
    if not identity.exists:
        return records
    return [r for r in records if r.tenant_uid == identity.uid]
