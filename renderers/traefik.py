"""Render a tenant's routes into its Traefik v3 dynamic configuration (file provider), pure.

Called by the runtime's routing stage (``runtime.passes.routing``) with the tenant's spec and the containers that may
serve right now (running, ready, with an address). One file per tenant; every router, service and middleware
name starts with ``<prefix>-<tenant>.``: tenant names contain no dots, so one tenant's names never collide with
another's, and the routing stage finds a tenant's objects in Traefik's API by that prefix.

Per exposed service:
- a router on the configured entrypoint only (a router without entrypoints would also answer on the API one),
  rule ``Host(`host`)`` plus ``PathPrefix(`/path`)`` when the route has a path;
- a load balancer over ``http://ip:port`` of the service's backends with a health check on the catalog's path,
  or, for a service with two versions, a ``weighted`` service over one load balancer per version, and a router
  of each version's own, reached with a version header (``renderers.traefik_versions``);
- an ``ipAllowList`` middleware when the route has allow or deny lists (deny becomes the complement);
- a ``stripPrefix`` middleware when the route has a path: the service sees paths relative to its prefix (as
  it would at the root of a host) and learns the prefix from the ``X-Forwarded-Prefix`` header;
- a ``retry`` middleware shared by the tenant's routers and a servers transport with a short dial timeout, so a
  request that cannot connect to a backend that just died is sent to another one quickly instead of failing.

Traefik's schema requires at least one server per load balancer, so a service without a ready backend gets no
router at all (its requests answer 404) and is reported in ``RenderedRoutes.unrouted``.

``render_maintenance`` is the file of a tenant under maintenance (a restore, ``runtime.operations.maintenance``):
the same routers (rules, allow lists) all sent to one maintenance server that answers 503 with ``Retry-After``.
Traefik v3 has no static-response middleware, so that server is a small container on the tenant's network, and
a ``replacePathRegex`` middleware sends every path to its one CGI script. Its load balancer has no health check:
one that answers 503 to every probe would be marked DOWN, and Traefik would answer its own 503 without the header.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from desired_state.networks import allowed_networks
from desired_state.specs import RouteSpec, ServiceSpec, TenantSpec
from reconciler.core.resources import Container
from reconciler.core.routes import RouteTable, file_header
from renderers import yaml_block
from renderers.traefik_versions import version_label, version_routers

# libyaml's safe dumper when installed (same bytes as the pure-Python one, about 5x faster).
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# How often Traefik probes each server, and how long a probe may take. A killed backend leaves rotation within
# about interval + timeout even before the reconciler reacts to the Docker event.
HEALTH_INTERVAL = "1s"
HEALTH_TIMEOUT = "1s"
# One retry: connection-level failures only (Traefik never retries once a backend answered).
RETRY_ATTEMPTS = 2
# Connecting to a container on a local bridge takes well under a millisecond; an address whose container is
# gone does not refuse but stays silent until the kernel gives up (about 3 s). Bounding the dial lets the retry
# reach a live replica quickly (measured in tests/integration/test_routing_e2e.py).
DIAL_TIMEOUT = "500ms"


@dataclass(frozen=True)
class RouteNaming:
    """Names of a tenant's dynamic file and Traefik objects; ``prefix`` is the reconciler's name prefix."""

    prefix: str = "erp"

    def file(self, tenant: str) -> str:
        return f"{self.prefix}-{tenant}.yml"

    def tenant_of_file(self, filename: str) -> str | None:
        head, tail = f"{self.prefix}-", ".yml"
        if filename.startswith(head) and filename.endswith(tail) and len(filename) > len(head) + len(tail):
            return filename[len(head) : -len(tail)]
        return None

    def tenant_prefix(self, tenant: str) -> str:
        return f"{self.prefix}-{tenant}."

    def router(self, tenant: str, service: str) -> str:
        return f"{self.tenant_prefix(tenant)}{service}"

    def service(self, tenant: str, service: str) -> str:
        return f"{self.tenant_prefix(tenant)}{service}"

    def version(self, tenant: str, service: str, track: str) -> str:
        # The first track's label is empty; call it "a" here so both versions read alike in the dashboard.
        return f"{self.tenant_prefix(tenant)}{service}.{version_label(track)}"

    def allow_list(self, tenant: str, service: str) -> str:
        return f"{self.tenant_prefix(tenant)}{service}.allow"

    def strip_prefix(self, tenant: str, service: str) -> str:
        return f"{self.tenant_prefix(tenant)}{service}.strip"

    def retry(self, tenant: str) -> str:
        return f"{self.tenant_prefix(tenant)}retry"

    def transport(self, tenant: str) -> str:
        return f"{self.tenant_prefix(tenant)}transport"

    def maintenance(self, tenant: str) -> str:
        return f"{self.tenant_prefix(tenant)}maintenance"

    def maintenance_path(self, tenant: str) -> str:
        return f"{self.tenant_prefix(tenant)}maintenance.path"


@dataclass(frozen=True)
class RenderedRoutes:
    tenant: str
    # The whole file content as a mapping: {"http": {...}}, or {} when nothing is routed.
    config: dict[str, Any]
    # The same, as the value type the routing stage compares with Traefik's API.
    table: RouteTable
    # Exposed services that got no router, with why (no ready backend, every weight 0).
    unrouted: tuple[str, ...] = ()
    # Addresses (host/path) that are routed.
    routed: tuple[str, ...] = ()
    # Whether the spec exposes anything at all.
    exposed: bool = False

    @property
    def empty(self) -> bool:
        return not self.config


def server_url(ip: str, port: int) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


def rule(route: RouteSpec) -> str:
    # Host and path are validated in desired_state.specs: no backticks or spaces can reach the rule.
    host = f"Host(`{route.host}`)"
    return f"{host} && PathPrefix(`{route.path}`)" if route.path else host


def _load_balancer(urls: list[str], health: str, transport: str) -> dict[str, Any]:
    return {
        "loadBalancer": {
            "servers": [{"url": url} for url in urls],
            "healthCheck": {"path": health, "interval": HEALTH_INTERVAL, "timeout": HEALTH_TIMEOUT},
            "passHostHeader": True,
            "serversTransport": transport,
        }
    }


def _urls(tenant: str, service: ServiceSpec, backends: Sequence[Container], track: str | None) -> list[str]:
    # The catalog's port, not the container's: observed containers do not report it.
    return sorted(
        {
            server_url(c.ip, service.port)
            for c in backends
            if c.ip and c.tenant == tenant and c.service == service.name and (track is None or c.track == track)
        }
    )


def _render_service(
    tenant: str, service: ServiceSpec, backends: Sequence[Container], naming: RouteNaming
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The Traefik services for one exposed service (router target first), or why it cannot be routed."""
    name = naming.service(tenant, service.name)
    if not service.versions:
        urls = _urls(tenant, service, backends, None)
        if not urls:
            return {}, f"service {service.name}: no ready backend"
        return {name: _load_balancer(urls, service.health, naming.transport(tenant))}, None
    services: dict[str, dict[str, Any]] = {}
    members: list[dict[str, Any]] = []
    for version in service.versions:
        urls = _urls(tenant, service, backends, version.track)
        if not urls or version.weight <= 0:
            continue
        member = naming.version(tenant, service.name, version.track)
        services[member] = _load_balancer(urls, service.health, naming.transport(tenant))
        members.append({"name": member, "weight": version.weight})
    if not members:
        return {}, f"service {service.name}: no ready backend in a version with a positive weight"
    # The empty health check makes Traefik skip a version whose servers are all DOWN instead of failing its share.
    return {name: {"weighted": {"services": members, "healthCheck": {}}}, **services}, None


def render_routes(
    spec: TenantSpec, backends: Sequence[Container], *, naming: RouteNaming, entrypoint: str
) -> RenderedRoutes:
    """The tenant's dynamic configuration for exactly ``backends`` (others of the tenant are not routed)."""
    tenant = spec.name
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    unrouted: list[str] = []
    routed: list[str] = []
    exposed = [s for s in spec.services if s.route is not None]
    for service in exposed:
        route = service.route
        assert route is not None
        rendered, problem = _render_service(tenant, service, backends, naming)
        if problem:
            unrouted.append(problem)
            continue
        services.update(rendered)
        # Refuse first: a refused client must not cost a backend anything.
        chain = []
        allow = _allow_list(route)
        if allow is not None:
            allow_name = naming.allow_list(tenant, service.name)
            middlewares[allow_name] = allow
            chain.append(allow_name)
        if route.path:
            strip_name = naming.strip_prefix(tenant, service.name)
            middlewares[strip_name] = {"stripPrefix": {"prefixes": [route.path]}}
            chain.append(strip_name)
        chain.append(naming.retry(tenant))
        routers[naming.router(tenant, service.name)] = {
            "rule": rule(route),
            "entryPoints": [entrypoint],
            "service": naming.service(tenant, service.name),
            "middlewares": chain,
        }
        members = [(v.track, naming.version(tenant, service.name, v.track)) for v in service.versions]
        routers.update(version_routers(rule(route), [m for m in members if m[1] in rendered], entrypoint, chain))
        routed.append(route.address)
    transports: dict[str, Any] = {}
    if routers:
        middlewares[naming.retry(tenant)] = {"retry": {"attempts": RETRY_ATTEMPTS}}
        transports[naming.transport(tenant)] = {"forwardingTimeouts": {"dialTimeout": DIAL_TIMEOUT}}
    sections = (
        ("routers", routers),
        ("services", services),
        ("middlewares", middlewares),
        ("serversTransports", transports),
    )
    http = {key: value for key, value in sections if value}
    config: dict[str, Any] = {"http": http} if http else {}
    return RenderedRoutes(
        tenant=tenant,
        config=config,
        table=RouteTable.from_dynamic(http),
        unrouted=tuple(unrouted),
        routed=tuple(routed),
        exposed=bool(exposed),
    )


# The maintenance server's one script (``runtime.operations.maintenance`` writes it): every request is sent there.
MAINTENANCE_SCRIPT_PATH = "/cgi-bin/maintenance"


def _allow_list(route: RouteSpec) -> dict[str, Any] | None:
    if not (route.allow or route.deny):
        return None
    return {"ipAllowList": {"sourceRange": list(_source_range(route.allow, route.deny))}}


# Tenants share allow lists (an office, a partner); each plan renders every tenant's, so the compiled ranges of the
# last lists seen are kept (at most 4096 ranges each, bounded by desired_state.bounds).
@lru_cache(maxsize=128)
def _source_range(allow: tuple[str, ...], deny: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(n) for n in allowed_networks(allow, deny))


def render_maintenance(spec: TenantSpec, server: str, *, naming: RouteNaming, entrypoint: str) -> RenderedRoutes:
    """The tenant's file while it is under maintenance: every exposed route to ``server`` (a URL), which answers
    503 with ``Retry-After``; allow and deny lists still refuse first."""
    tenant = spec.name
    routers: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    routed: list[str] = []
    rewrite = naming.maintenance_path(tenant)
    for service in spec.services:
        route = service.route
        if route is None:
            continue
        chain = []
        allow = _allow_list(route)
        if allow is not None:
            middlewares[naming.allow_list(tenant, service.name)] = allow
            chain.append(naming.allow_list(tenant, service.name))
        chain.append(rewrite)
        routers[naming.router(tenant, service.name)] = {
            "rule": rule(route),
            "entryPoints": [entrypoint],
            "service": naming.maintenance(tenant),
            "middlewares": chain,
        }
        routed.append(route.address)
    if not routers:
        return RenderedRoutes(tenant=tenant, config={}, table=RouteTable(), exposed=False)
    middlewares[rewrite] = {"replacePathRegex": {"regex": "^.*$", "replacement": MAINTENANCE_SCRIPT_PATH}}
    balancer = {"servers": [{"url": server}], "passHostHeader": True, "serversTransport": naming.transport(tenant)}
    http = {
        "routers": routers,
        "services": {naming.maintenance(tenant): {"loadBalancer": balancer}},
        "middlewares": middlewares,
        "serversTransports": {naming.transport(tenant): {"forwardingTimeouts": {"dialTimeout": DIAL_TIMEOUT}}},
    }
    return RenderedRoutes(
        tenant=tenant, config={"http": http}, table=RouteTable.from_dynamic(http), routed=tuple(routed), exposed=True
    )


def render_file(rendered: RenderedRoutes, owner: str) -> str:
    """The file's text: our header line, then YAML with sorted keys, so equal content gives equal bytes."""
    body = yaml_block.dump(rendered.config)
    if body is None:  # a value the fast writer leaves to PyYAML (same bytes either way)
        body = yaml.dump(rendered.config, Dumper=_DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=False)
    return file_header(owner, rendered.tenant) + body
