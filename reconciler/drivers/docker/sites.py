"""The Docker objects of WordPress sites: observed by their labels (``reconciler.core.wordpress``), three list
calls whatever the number of sites. Created, started and removed with the ``DockerDriver``'s own calls (a site's
containers are ``Container`` values like a tenant's, with the volume at /data), so timeouts and error translation
are the same. Called by the WordPress part of the sites stage (``reconciler.runtime.passes.wordpress_step``).
"""

from __future__ import annotations

from reconciler.core.wordpress import LABEL_SITE_OWNER, SiteObjectsSeen
from reconciler.drivers.docker.driver import DockerDriver
from reconciler.drivers.docker.inspect import container_from_list


def observe_sites(driver: DockerDriver) -> SiteObjectsSeen:
    """The containers, networks and volumes labelled as sites of the driver's owner."""
    filters = {"label": [f"{LABEL_SITE_OWNER}={driver.owner}"]}
    containers = driver._list("containers", all=True, filters=filters)
    networks = driver._list("networks", filters=filters)
    volumes = driver._list("volumes", filters=filters)
    return SiteObjectsSeen(
        containers=tuple(sorted((container_from_list(c) for c in containers), key=lambda c: c.name)),
        networks=frozenset(str(n["Name"]) for n in networks),
        volumes=frozenset(str(v["Name"]) for v in (volumes or {}).get("Volumes") or []),
    )
