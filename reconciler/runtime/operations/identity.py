"""The operator's answers to a tenant held for its data volume (``Data=False``, see ``planning.identity``).

``reconciler tenants adopt NAME --yes``: a new tenant that reuses a name takes over the data volume and the backups
of the former tenant of that name (``ForeignData``). ``reconciler tenants recreate-volume NAME --yes``: a tenant
whose volume is gone from Docker (``DataVolumeLost``) starts on an empty one. (``tenants purge`` is the third
answer: ``operations.purge``.) Each is refused without ``--yes``, logged, and recorded as one ``operations`` row;
the next pass (``reconciler apply`` or ``reconciler run``) then converges the tenant. Also here: whose data a
volume holds, which the backup service checks before it archives or restores.
"""

from __future__ import annotations

import logging
import sys

from sqlalchemy import Engine

from desired_state.backups import list_backups
from desired_state.database import make_engine
from desired_state.identity import adopt_data, binding_of, ensure_uid, retire_binding
from desired_state.operations import record_operation
from reconciler.core.resources import Volume
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.settings import Settings
from renderers.containers import Naming

log = logging.getLogger("reconciler.identity")


def owner_uid(engine: Engine, volume: str, seen: Volume | None) -> str | None:
    """The uid whose data ``volume`` holds: its binding, else its uid label (None: unknown, older than uids)."""
    binding = binding_of(engine, volume)
    if binding is not None:
        return binding.uid
    return seen.uid if seen is not None else None


def foreign_data(engine: Engine, docker: DockerDriver, naming: Naming, tenant: str, uid: str | None) -> str | None:
    """Why ``tenant`` (of ``uid``) may not read or write its volume, or None: it holds another uid's data."""
    volume = naming.volume(tenant)
    seen = next((v for v in docker.observe(tenant).volumes if v.name == volume), None)
    other = owner_uid(engine, volume, seen)
    if other is None or other == uid:
        return None
    return (
        f"data volume {volume} belongs to uid {other}, a former tenant named {tenant!r}, not to this tenant "
        f"(uid {uid}); run `reconciler tenants adopt {tenant} --yes` or `reconciler tenants purge {tenant} --yes`"
    )


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def adopt_tenant(settings: Settings, tenant: str, *, confirmed: bool) -> int:
    naming = Naming(prefix=settings.name_prefix, owner=settings.owner_id)
    engine = make_engine(settings.database_url)
    try:
        identity = ensure_uid(engine, tenant)
        if not identity.exists or identity.uid is None:
            return _fail(f"tenant {tenant!r} is not in the tenants table; only an existing tenant can adopt data")
        uid = identity.uid
        volume = naming.volume(tenant)
        docker = DockerDriver(owner=settings.owner_id, docker_host=settings.docker_host)
        seen = next((v for v in docker.observe(tenant).volumes if v.name == volume), None)
        previous = owner_uid(engine, volume, seen)
        backups = [b for b in list_backups(engine, tenant) if b.tenant_uid != uid]
        if previous in (None, uid) and not backups:
            print(f"tenant {tenant!r} (uid {uid}) holds no data of another uid; nothing to adopt")
            return 0
        what = f"data volume {volume} of uid {previous}" if previous not in (None, uid) else "no data volume"
        if not confirmed:
            return _fail(
                f"adopting gives tenant {tenant!r} (uid {uid}) {what} and {len(backups)} backup(s) of the former "
                "tenant of that name; add --yes to confirm"
            )
        adoption = adopt_data(engine, tenant, volume, uid, exists=seen is not None)
        output = f"{what} and {adoption.backups} backup(s) bound to uid {uid}"
        record_operation(engine, tenant, "adopt", "succeeded", trigger="manual", output=output)
        log.warning("tenant=%s adopt on explicit request: %s", tenant, output, extra={"tenant": tenant})
        print(f"tenant {tenant}: {output}; the next pass converges it")
        return 0
    finally:
        engine.dispose()


def recreate_volume(settings: Settings, tenant: str, *, confirmed: bool) -> int:
    naming = Naming(prefix=settings.name_prefix, owner=settings.owner_id)
    engine = make_engine(settings.database_url)
    try:
        identity = ensure_uid(engine, tenant)
        volume = naming.volume(tenant)
        binding = binding_of(engine, volume)
        if binding is None or binding.state != "bound":
            return _fail(f"data volume {volume} of tenant {tenant!r} is not known as lost; nothing to recreate")
        if binding.uid != identity.uid:
            return _fail(
                f"data volume {volume} belongs to uid {binding.uid}, not to tenant {tenant!r} (uid {identity.uid}); "
                f"use `reconciler tenants adopt {tenant} --yes` or `reconciler tenants purge {tenant} --yes`"
            )
        docker = DockerDriver(owner=settings.owner_id, docker_host=settings.docker_host)
        if any(v.name == volume for v in docker.observe(tenant).volumes):
            return _fail(f"data volume {volume} of tenant {tenant!r} exists; nothing to recreate")
        if not confirmed:
            return _fail(f"the tenant starts on an empty data volume {volume}; add --yes to confirm")
        retire_binding(engine, volume, "lost from Docker; recreated empty on explicit request")
        output = f"data volume {volume} lost; the next pass creates it empty"
        record_operation(engine, tenant, "recreate-volume", "succeeded", trigger="manual", output=output)
        log.warning("tenant=%s recreate-volume on explicit request: %s", tenant, output, extra={"tenant": tenant})
        print(f"tenant {tenant}: {output} (restore a backup afterwards with `reconciler restore {tenant} ID`)")
        return 0
    finally:
        engine.dispose()
