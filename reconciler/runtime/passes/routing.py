"""The routing stage: ``TraefikRouter`` implements ``runtime.passes.stages.Router`` over the Traefik driver.

The executor calls ``publish`` for a running tenant whose plan has a route change, with the containers that may
serve now, twice around a replacement (old + new, then new only); ``withdraw`` when the plan removes the route.
``publish`` renders the tenant's file (``renderers.traefik``), writes it only if its content differs from the
disk (so a file deleted or edited by hand is rewritten by the next pass), then reads Traefik's API until the
file is loaded: exactly the rendered routers, services and middlewares, every server listed and, for servers
new in this publish, UP. That is what lets the executor stop an old container only after Traefik stopped
sending it traffic. ``begin_pass`` reads the API once per pass, so unchanged tenants cost no request; a file
deleted or edited by hand is a route change in the plan (``observe_files`` feeds the planner), rewritten by
``publish`` like any other. ``maintain`` sends a tenant's routes to a maintenance answer while a restore runs
(``runtime.operations.maintenance``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from desired_state.model import Condition
from desired_state.specs import TenantSpec
from reconciler.core.errors import ReconcileError, TransientError
from reconciler.core.resources import Container
from reconciler.core.routes import RouteFile, RouteTable, RouteVerdict, parse_route_file, verify
from reconciler.drivers.traefik import TraefikDriver
from reconciler.runtime.settings import Settings
from renderers.containers import Naming
from renderers.traefik import RenderedRoutes, RouteNaming, render_file, render_maintenance, render_routes

log = logging.getLogger("reconciler.routing")

CONDITION = "RouteReady"
# How long publish/withdraw wait for Traefik to confirm; it reloads a changed file in about 0.3 s.
CONFIRM_TIMEOUT = 15.0
# How often the API is read while waiting: often enough that a replacement is not slowed down noticeably.
POLL_INTERVAL = 0.1
# An API that stays unreachable this long fails the wait early: Traefik restarts in about a second, and a pass
# should not spend the whole confirmation timeout on every tenant while Traefik is down.
UNREACHABLE_GRACE = 3.0
# When a router has no healthy server (typically a lone replica just restarted at its old address, which
# Traefik marked DOWN), wait up to about one health-check round for it to come back before reporting
# ServerDown: otherwise RouteReady would flap to False for a pass (and DNS follow it) after every such heal.
HEALTH_GRACE = 2.5


@dataclass(frozen=True)
class _Published:
    rendered: RenderedRoutes
    content: str | None  # None: no file (nothing to route)


class TraefikRouter:
    def __init__(
        self,
        driver: TraefikDriver,
        *,
        naming: RouteNaming,
        entrypoint: str,
        owner: str,
        timeout: float = CONFIRM_TIMEOUT,
        interval: float = POLL_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.driver = driver
        self.naming = naming
        self.entrypoint = entrypoint
        self.owner = owner
        self.timeout = timeout
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._observed: RouteTable | None = None
        self._published: dict[str, _Published] = {}
        self._conditions: dict[str, Condition] = {}
        self._api_error: str | None = None
        self._parsed: dict[str, RouteFile] = {}

    # --- Router protocol -------------------------------------------------------------------------------------

    def observe_files(self) -> dict[str, RouteFile]:
        """Every dynamic file with our name prefix, parsed (one directory listing and a read per file)."""
        files: dict[str, RouteFile] = {}
        for tenant, text in self.driver.files().items():
            cached = self._parsed.get(tenant)
            # A file unchanged since the last pass is not parsed again (a no-op pass only reads the text).
            files[tenant] = (
                cached
                if cached is not None and cached.content == text
                else parse_route_file(tenant, self.naming.file(tenant), text)
            )
        with self._lock:
            self._parsed = files
        return files

    def begin_pass(self, files: Mapping[str, RouteFile]) -> None:
        """Read Traefik's API once (``ready`` then answers without I/O). ``files`` are the tenants' files on disk:
        a tenant not published by this process yet is judged by its file, so a converged tenant needs no write."""
        try:
            observed = self.driver.observe()
        except ReconcileError as exc:
            with self._lock:
                self._observed = None
                self._api_error = str(exc)
            raise
        with self._lock:
            self._observed = observed
            self._api_error = None
            for tenant, file in files.items():
                last = self._published.get(tenant)
                if file.owner == self.owner and (last is None or last.content != file.content):
                    self._published[tenant] = _Published(_from_file(file), file.content)
            published = dict(self._published)
        for tenant, last in published.items():
            verdict = self._verdict(tenant, last.rendered.table, observed)
            with self._lock:
                self._conditions[tenant] = self._condition(last.rendered, verdict, restored=False)

    def publish(self, spec: TenantSpec, backends: Sequence[Container]) -> None:
        tenant = spec.name
        rendered = render_routes(spec, backends, naming=self.naming, entrypoint=self.entrypoint)
        content = None if rendered.empty else render_file(rendered, self.owner)
        with self._lock:
            previous = self._published.get(tenant)
            snapshot = self._observed
        changed = self.driver.delete(tenant) if content is None else self.driver.write(tenant, content)
        if changed:
            if previous is not None and previous.content == content:
                log.info("tenant=%s routes restored: dynamic file was deleted or edited by hand", tenant)
            else:
                log.info("tenant=%s routes written: %s", tenant, _summary(rendered))
        with self._lock:
            self._published[tenant] = _Published(rendered, content)
            api_error = self._api_error
        if not changed and snapshot is None and api_error is not None:
            # Nothing new to confirm and Traefik unreadable this pass: say so instead of failing the tenant.
            with self._lock:
                self._conditions[tenant] = Condition(CONDITION, "Unknown", "TraefikUnreachable", api_error)
            return
        known = _servers(previous.rendered.table) if previous is not None else frozenset()
        verdict = self._verdict(tenant, rendered.table, snapshot) if snapshot is not None and not changed else None
        if verdict is None or not _settled(verdict, _servers(rendered.table) - known):
            verdict = self._confirm(tenant, rendered, new_servers=_servers(rendered.table) - known)
        if verdict.loaded and not verdict.ready:
            verdict = self._await_health(tenant, rendered, verdict)
        with self._lock:
            self._conditions[tenant] = self._condition(rendered, verdict, restored=False)

    def maintain(self, spec: TenantSpec, server: str) -> None:
        """Send every route of the tenant to the maintenance ``server`` (a restore runs) and wait until Traefik
        serves it; the next ``publish`` (the pass after the restore) routes the tenant's containers again."""
        tenant = spec.name
        rendered = render_maintenance(spec, server, naming=self.naming, entrypoint=self.entrypoint)
        if rendered.empty:
            return
        content = render_file(rendered, self.owner)
        self.driver.write(tenant, content)
        log.info("tenant=%s routes to the maintenance answer (503, Retry-After)", tenant, extra={"tenant": tenant})
        with self._lock:
            self._published[tenant] = _Published(rendered, content)
        self._confirm(tenant, rendered, new_servers=frozenset({server}))
        with self._lock:
            self._conditions[tenant] = Condition(CONDITION, "False", "Maintenance", "restore running: answering 503")

    def withdraw(self, tenant: str) -> None:
        with self._lock:
            snapshot = self._observed
            known = tenant in self._published
        removed = self.driver.delete(tenant)
        if removed:
            log.info("tenant=%s routes withdrawn", tenant)
        prefix = self.naming.tenant_prefix(tenant)
        # Nothing of ours to wait for: no file removed now, none published in this run, none listed (or Traefik
        # unreadable, where waiting would only fail every stopped tenant while it is down).
        if removed or known or (snapshot is not None and not snapshot.select(prefix).empty):
            self._wait(tenant, lambda table: table.select(prefix).empty, "routes still listed after withdrawal")
        with self._lock:
            self._published.pop(tenant, None)
            self._conditions.pop(tenant, None)

    def ready(self, tenant: str) -> Condition:
        with self._lock:
            condition = self._conditions.get(tenant)
        return condition or Condition(CONDITION, "Unknown", "NotPublished", "routes not published yet in this run")

    def owned_tenants(self) -> frozenset[str]:
        return self.driver.tenants()

    # --- internals -------------------------------------------------------------------------------------------

    def _verdict(self, tenant: str, expected: RouteTable, observed: RouteTable) -> RouteVerdict:
        return verify(expected, observed.select(self.naming.tenant_prefix(tenant)))

    @staticmethod
    def _condition(rendered: RenderedRoutes, verdict: RouteVerdict, restored: bool) -> Condition:
        if not rendered.exposed:
            return Condition(CONDITION, "True", "NoRoutes", "the tenant exposes no service")
        if restored:
            return Condition(
                CONDITION, "False", "ConfigRestored", "dynamic file was missing or edited by hand; rewritten"
            )
        if (rendered.unrouted and verdict.ready) or rendered.empty:
            return Condition(CONDITION, "False", "NoBackends", "; ".join(rendered.unrouted))
        where = ", ".join(rendered.routed)
        message = f"{where}: {verdict.message}" if where else verdict.message
        return Condition(CONDITION, "True" if verdict.ready else "False", verdict.reason, message)

    def _confirm(self, tenant: str, rendered: RenderedRoutes, new_servers: frozenset[str]) -> RouteVerdict:
        """Read the API until the tenant's file is loaded and its new servers are UP; TransientError on timeout."""
        prefix = self.naming.tenant_prefix(tenant)
        outcome: list[RouteVerdict] = []

        def confirmed(table: RouteTable) -> bool:
            verdict = verify(rendered.table, table.select(prefix))
            outcome[:] = [verdict]
            return _settled(verdict, new_servers)

        self._wait(tenant, confirmed, "Traefik did not confirm the routes", lambda: outcome[0].message)
        return outcome[0]

    def _await_health(self, tenant: str, rendered: RenderedRoutes, verdict: RouteVerdict) -> RouteVerdict:
        """Poll for up to HEALTH_GRACE until every router reaches a healthy server; never raises."""
        deadline = self._clock() + HEALTH_GRACE
        prefix = self.naming.tenant_prefix(tenant)
        while not verdict.ready and self._clock() < deadline:
            self._sleep(self.interval)
            try:
                table = self.driver.observe()
            except ReconcileError:
                break
            with self._lock:
                self._observed = table
            verdict = verify(rendered.table, table.select(prefix))
        return verdict

    def _wait(
        self,
        tenant: str,
        done: Callable[[RouteTable], bool],
        failure: str,
        detail: Callable[[], str] | None = None,
    ) -> None:
        deadline = self._clock() + self.timeout
        last_error = ""
        unreachable_since: float | None = None
        while True:
            try:
                table = self.driver.observe()
            except ReconcileError as exc:
                last_error = str(exc)
                unreachable_since = self._clock() if unreachable_since is None else unreachable_since
            else:
                last_error = ""
                unreachable_since = None
                with self._lock:
                    self._observed = table
                    self._api_error = None
                if done(table):
                    return
            now = self._clock()
            if now >= deadline or (unreachable_since is not None and now - unreachable_since >= UNREACHABLE_GRACE):
                why = last_error or (detail() if detail else "")
                limit = f"within {self.timeout:g}s" if now >= deadline else "(Traefik API unreachable)"
                raise TransientError(f"tenant {tenant!r}: {failure} {limit}: {why}".rstrip(": "), tenant=tenant)
            self._sleep(self.interval)


def _from_file(file: RouteFile) -> RenderedRoutes:
    """What a file on disk routes, for conditions, when this process has not rendered it itself."""
    hosts = tuple(r.rule for r in file.table.routers)
    return RenderedRoutes(
        tenant=file.tenant, config={"http": {}} if not file.empty else {}, table=file.table, routed=hosts, exposed=True
    )


def _servers(table: RouteTable) -> frozenset[str]:
    return frozenset(url for service in table.services for url in service.servers)


def _settled(verdict: RouteVerdict, new_servers: frozenset[str]) -> bool:
    """Loaded, and no server added by this publish is DOWN (old ones failing are reported, not waited for)."""
    return verdict.ready or (verdict.loaded and not set(verdict.down) & new_servers)


def _summary(rendered: RenderedRoutes) -> str:
    if rendered.empty:
        return "no router (" + ("; ".join(rendered.unrouted) or "nothing exposed") + ")"
    servers = len(_servers(rendered.table))
    return f"{', '.join(rendered.routed)} → {servers} server(s)"


def build_traefik_router(settings: Settings, naming: Naming) -> TraefikRouter:
    """Called by ``runtime.wiring`` when ``traefik_dynamic_dir`` is set; the API URL is then required."""
    if not settings.traefik_dynamic_dir:
        raise ValueError("RECONCILER_TRAEFIK_DYNAMIC_DIR is not set; routing needs Traefik's dynamic config directory")
    if not settings.traefik_api_url:
        raise ValueError(
            "RECONCILER_TRAEFIK_API_URL is not set; routing needs Traefik's API (e.g. http://127.0.0.1:8080) "
            "to confirm that routes are loaded before old containers are stopped"
        )
    driver = TraefikDriver(
        settings.traefik_dynamic_dir, settings.traefik_api_url, prefix=naming.prefix, owner=naming.owner
    )
    return TraefikRouter(
        driver, naming=RouteNaming(naming.prefix), entrypoint=settings.traefik_entrypoint, owner=naming.owner
    )
