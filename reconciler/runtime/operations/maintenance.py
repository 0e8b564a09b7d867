"""The maintenance answer during a restore: the tenant's routes answer 503 with ``Retry-After``, never 502.

``TenantOps.restore`` calls ``begin`` once the restore holds the tenant (no pass touches it any more) and before
its containers stop, and ``end`` after the pass that follows the restore, which routes the restored containers
again as soon as they are ready. ``begin`` starts a small helper container on the tenant's network (busybox
``httpd`` with one CGI script answering ``Status: 503`` and ``Retry-After``; Traefik reaches it like any tenant
container, so no network joins tenants together), waits until it answers, and has the router send every route
of the tenant to it (``TraefikRouter.maintain``). Best effort: if any of it fails the restore goes on (the tenant
then answers 502 while stopped, as without it), with a warning.

The helper carries the owner and tenant labels and ``role=maintenance`` but not the managed label, so passes do
not see it. Its name is fixed per tenant: a leftover of a crashed restore is replaced by the next one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from desired_state.specs import TenantSpec
from reconciler.core.errors import ReconcileError
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.operations.common import helper_labels
from renderers.containers import Naming
from renderers.traefik import MAINTENANCE_SCRIPT_PATH, server_url

log = logging.getLogger("reconciler.backups")

PORT = 8080
# What clients are told to wait before trying again: a restore of a small volume takes seconds, a big one minutes.
RETRY_AFTER = 30
# The helper answers within a second of starting; past this the restore goes on without it.
START_TIMEOUT = 10.0
_POLL = 0.1
# The CGI script (given to the shell as $1, so no quoting of it in the command) and httpd; every request reaches
# the script, because the router rewrites every path to it. The image is plain busybox.
_CGI = (
    "#!/bin/sh\n"
    "printf 'Status: 503 Service Unavailable\\r\\nRetry-After: {retry}\\r\\nContent-Type: text/plain\\r\\n"
    "Cache-Control: no-store\\r\\n\\r\\nbeing restored, please retry in a moment\\n'\n"
)
_SERVE = (
    'mkdir -p /www/cgi-bin && printf "%s" "$1" > /www{path} && chmod 755 /www{path} && exec httpd -f -p {port} -h /www'
)


class MaintenanceRouter(Protocol):
    """What this module needs of ``runtime.passes.routing.TraefikRouter``."""

    def maintain(self, spec: TenantSpec, server: str) -> None: ...


@dataclass
class MaintenanceAnswer:
    docker: DockerDriver
    naming: Naming
    router: MaintenanceRouter
    image: str
    start_timeout: float = START_TIMEOUT

    def name(self, tenant: str) -> str:
        return f"{self.naming.prefix}-{tenant}-maintenance"

    def begin(self, spec: TenantSpec) -> bool:
        """Route the tenant to the maintenance answer; False (logged) when it could not be set up."""
        import httpx  # here, not at module level: a one-shot command that restores nothing never loads it

        tenant = spec.name
        if spec.state != "running" or not any(s.route is not None for s in spec.services):
            return False
        try:
            url = self._start(tenant)
            self.router.maintain(spec, url)
        except (ReconcileError, OSError, httpx.HTTPError) as exc:
            why = f"maintenance answer not set up, the restore goes on: {exc}"
            log.warning("tenant=%s %s", tenant, why, extra={"tenant": tenant})
            self.end(tenant)
            return False
        return True

    def end(self, tenant: str) -> None:
        self.docker.remove_helper(self.name(tenant))

    def _start(self, tenant: str) -> str:
        name = self.name(tenant)
        self.docker.remove_helper(name)  # a leftover of a crashed restore
        serve = _SERVE.format(path=MAINTENANCE_SCRIPT_PATH, port=PORT)
        self.docker.start_helper(
            self.image,
            ["sh", "-c", serve, "maintenance", _CGI.format(retry=RETRY_AFTER)],
            name=name,
            network=self.naming.network(tenant),
            labels=helper_labels(self.naming, tenant, "maintenance"),
        )
        import httpx

        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                current = self.docker.container(name)
                if current is not None and current.ip:
                    url = server_url(current.ip, PORT)
                    try:
                        if client.get(url + MAINTENANCE_SCRIPT_PATH).status_code == 503:
                            return url
                    except httpx.HTTPError:
                        pass  # httpd not listening yet
                time.sleep(_POLL)
        raise ReconcileError(f"maintenance answer {name} did not answer within {self.start_timeout:g}s", tenant=tenant)
