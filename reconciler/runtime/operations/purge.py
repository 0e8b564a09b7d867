"""``reconciler tenants purge NAME --yes``: the one explicit, logged way to delete a tenant's data volume.

Refused without ``--yes`` and while any container of the tenant (ours) still exists, running or not.
"""

from __future__ import annotations

import logging
import sys

from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.settings import Settings
from renderers.containers import Naming

log = logging.getLogger("reconciler.purge")


def purge_tenant(settings: Settings, tenant: str, *, confirmed: bool) -> int:
    naming = Naming(prefix=settings.name_prefix, owner=settings.owner_id)
    docker = DockerDriver(owner=settings.owner_id, docker_host=settings.docker_host)
    snapshot = docker.observe(tenant)
    volumes = [v for v in snapshot.volumes if v.tenant == tenant]
    if not volumes:
        print(f"tenant {tenant!r} has no data volume owned by {settings.owner_id!r}; nothing to purge")
        return 0
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
        print(f"deleted data volume {volume.name} of tenant {tenant} ({naming.owner})")
    return 0
