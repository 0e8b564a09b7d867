"""The Docker objects of WordPress sites: observed by their labels (``reconciler.core.wordpress``), three list
calls whatever the number of sites. Created, started and removed with the ``DockerDriver``'s own calls (a site's
containers are ``Container`` values like a tenant's, with the volume at /data), so timeouts and error translation
are the same. ``exec_streaming``: a command in a running site container with its input or output streamed (the
database dump and its restore, ``runtime.operations.site_backups``). Called by the WordPress part of the sites
stage (``reconciler.runtime.passes.wordpress_step``).
"""

from __future__ import annotations

import subprocess
from typing import BinaryIO

from reconciler.core.errors import TransientError
from reconciler.core.wordpress import LABEL_SITE_OWNER, SiteObjectsSeen
from reconciler.drivers.docker.driver import DockerDriver
from reconciler.drivers.docker.errors import SYSTEM
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


def exec_streaming(
    driver: DockerDriver,
    container: str,
    command: list[str],
    *,
    timeout: float,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> None:
    """``docker exec`` ``command`` in a running container, ``stdin``/``stdout`` streamed from/to open files (a
    database dump). Raises ``TransientError`` with the command's stderr when it fails or runs past ``timeout``."""
    docker_cmd = list(driver.helper_cli.client_config.docker_cmd)
    argv = [*docker_cmd, "exec", *(["--interactive"] if stdin is not None else []), container, *command]
    what = f"{command[0]} in {container}"
    driver._count("mutate")
    try:
        done = subprocess.run(
            argv, stdin=stdin, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"{what}: no answer within {timeout:g}s", system=SYSTEM, key=container) from exc
    if done.returncode != 0:
        error = done.stderr.decode(errors="replace").strip()[-300:] or f"exit code {done.returncode}"
        raise TransientError(f"{what} failed: {error}", system=SYSTEM, key=container)
