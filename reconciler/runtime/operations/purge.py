"""``reconciler tenants purge NAME --yes``: the one explicit, logged way to delete a tenant's data volume.

Refused without ``--yes`` and while any container of the tenant (ours) still exists, running or not. The volume's
binding to a tenant uid (``data_volumes``) is retired with it, so the tenant of that name starts on a new, empty
volume; one ``operations`` row records it.
"""

from __future__ import annotations

import logging
import sys

from sqlalchemy import Engine

from desired_state.database import make_engine
from desired_state.identity import binding_of, retire_binding
from desired_state.operations import record_operation
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.settings import Settings
from renderers.containers import Naming

log = logging.getLogger("reconciler.purge")


def purge_tenant(settings: Settings, tenant: str, *, confirmed: bool) -> int:
    engine = make_engine(settings.database_url)
    try:
        return _purge(settings, engine, tenant, confirmed=confirmed)
    finally:
        engine.dispose()


def _purge(settings: Settings, engine: Engine, tenant: str, *, confirmed: bool) -> int:
    naming = Naming(prefix=settings.name_prefix, owner=settings.owner_id)
    docker = DockerDriver(owner=settings.owner_id, docker_host=settings.docker_host)
    snapshot = docker.observe(tenant)
    volumes = [v for v in snapshot.volumes if v.tenant == tenant]
    if not volumes:
        return _forget_lost(engine, naming.volume(tenant), tenant, settings.owner_id, confirmed=confirmed)
    if snapshot.containers:
        names = ", ".join(c.name for c in snapshot.containers)
        print(
            f"error: refusing to purge tenant {tenant!r}: its containers still exist ({names}); "
            "set the tenant to absent and let the reconciler remove them first",
            file=sys.stderr,
        )
        return 1
    if not confirmed:
        print(f"error: purging deletes {volumes[0].name} and all its data; add --yes to confirm", file=sys.stderr)
        return 1
    for volume in volumes:
        log.warning("tenant=%s purge: deleting data volume %s on explicit request", tenant, volume.name)
        docker.remove_volume(volume.name, tenant)
        retired = retire_binding(engine, volume.name, "purged on explicit request")
        whose = f" (uid {retired.uid})" if retired is not None else ""
        record_operation(engine, tenant, "purge", "succeeded", trigger="manual", output=f"deleted {volume.name}{whose}")
        print(f"deleted data volume {volume.name}{whose} of tenant {tenant} ({naming.owner})")
    return 0


def _forget_lost(engine: Engine, volume: str, tenant: str, owner: str, *, confirmed: bool) -> int:
    """No volume to delete; a binding of one that is gone (lost) is retired, so the tenant may start empty."""
    binding = binding_of(engine, volume)
    if binding is None:
        print(f"tenant {tenant!r} has no data volume owned by {owner!r}; nothing to purge")
        return 0
    if not confirmed:
        print(f"error: purging forgets the lost data volume {volume} (uid {binding.uid}); add --yes", file=sys.stderr)
        return 1
    retire_binding(engine, volume, "purged on explicit request (the volume was already gone)")
    record_operation(engine, tenant, "purge", "succeeded", trigger="manual", output=f"forgot lost {volume}")
    log.warning("tenant=%s purge: forgot lost data volume %s (uid %s)", tenant, volume, binding.uid)
    print(f"data volume {volume} of uid {binding.uid} was already gone; its binding is retired")
    return 0
