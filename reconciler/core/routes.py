"""Route value types: one tenant's Traefik routers, services and middlewares, desired or observed (pure).

The renderer (``renderers.traefik``) builds a ``RouteTable`` from the dynamic configuration it writes; the
Traefik driver builds one from what Traefik's API reports. Both go through ``RouteTable.from_dynamic``, since
the API echoes the file provider's structure, so ``verify`` compares like with like. Called by the runtime's
routing stage after every write and once per pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

# libyaml's safe loader parses a tenant's file in ~0.3 ms, the pure-Python one in ~2-3 ms (docs/benchmarks.md).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The provider suffix Traefik appends to names of the file provider's objects in its API.
FILE_PROVIDER = "file"

# First line of every dynamic file we write: marks it as ours (a shared directory may hold files of others).
_HEADER_RE = re.compile(r"^# tenant-reconciler owner=(?P<owner>[a-z0-9-]+) tenant=(?P<tenant>[a-z0-9-]+)\b")


def file_header(owner: str, tenant: str) -> str:
    return f"# tenant-reconciler owner={owner} tenant={tenant}; written by the reconciler, hand edits are undone\n"


def parse_file_header(text: str) -> tuple[str, str] | None:
    """(owner, tenant) from a dynamic file's first line, or None if it is not one of ours."""
    match = _HEADER_RE.match(text)
    return (match.group("owner"), match.group("tenant")) if match else None


def _local(name: str) -> str:
    """``erp-acme.a@file`` → ``erp-acme.a``; names in the file carry no provider suffix."""
    return name.removesuffix(f"@{FILE_PROVIDER}")


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list | tuple) else ()


@dataclass(frozen=True)
class RouteRouter:
    name: str
    rule: str
    service: str
    entry_points: tuple[str, ...]
    middlewares: tuple[str, ...]
    # Observed only: Traefik's verdict on the router (enabled, disabled, warning) and its errors.
    status: str = "enabled"
    errors: tuple[str, ...] = ()

    def same_config(self, other: RouteRouter) -> bool:
        return (self.rule, self.service, self.entry_points, self.middlewares) == (
            other.rule,
            other.service,
            other.entry_points,
            other.middlewares,
        )


@dataclass(frozen=True)
class RouteService:
    """A load balancer over server URLs (with a health check path) or a weighted split between services."""

    name: str
    kind: str  # loadBalancer | weighted | other
    servers: tuple[str, ...] = ()
    health: str | None = None
    members: tuple[tuple[str, float], ...] = ()
    status: str = "enabled"
    errors: tuple[str, ...] = ()
    # Observed only: (url, UP | DOWN) for every server Traefik currently balances over.
    server_status: tuple[tuple[str, str], ...] = ()

    def same_config(self, other: RouteService) -> bool:
        return (self.kind, self.servers, self.health, self.members) == (
            other.kind,
            other.servers,
            other.health,
            other.members,
        )


@dataclass(frozen=True)
class RouteMiddleware:
    name: str
    kind: str  # ipAllowList | stripPrefix | retry | other
    settings: tuple[tuple[str, str], ...] = ()
    status: str = "enabled"
    errors: tuple[str, ...] = ()

    def same_config(self, other: RouteMiddleware) -> bool:
        return (self.kind, self.settings) == (other.kind, other.settings)


def _router(name: str, raw: Mapping[str, Any]) -> RouteRouter:
    return RouteRouter(
        name=_local(name),
        rule=str(raw.get("rule", "")),
        service=_local(str(raw.get("service", ""))),
        entry_points=tuple(sorted(_strings(raw.get("entryPoints")))),
        middlewares=tuple(_local(m) for m in _strings(raw.get("middlewares"))),
        status=str(raw.get("status", "enabled")),
        errors=_strings(raw.get("error")),
    )


def _service(name: str, raw: Mapping[str, Any]) -> RouteService:
    status = str(raw.get("status", "enabled"))
    errors = _strings(raw.get("error"))
    balancer = raw.get("loadBalancer")
    if isinstance(balancer, Mapping):
        servers = tuple(sorted(str(s.get("url", "")) for s in balancer.get("servers") or [] if isinstance(s, Mapping)))
        health = balancer.get("healthCheck")
        server_status = raw.get("serverStatus")
        return RouteService(
            name=_local(name),
            kind="loadBalancer",
            servers=servers,
            health=str(health.get("path")) if isinstance(health, Mapping) and health.get("path") else None,
            status=status,
            errors=errors,
            server_status=tuple(sorted((str(u), str(s)) for u, s in server_status.items()))
            if isinstance(server_status, Mapping)
            else (),
        )
    weighted = raw.get("weighted")
    if isinstance(weighted, Mapping):
        members = tuple(
            sorted(
                (_local(str(m.get("name", ""))), float(m.get("weight", 1)))
                for m in weighted.get("services") or []
                if isinstance(m, Mapping)
            )
        )
        return RouteService(name=_local(name), kind="weighted", members=members, status=status, errors=errors)
    return RouteService(name=_local(name), kind="other", status=status, errors=errors)


def _middleware(name: str, raw: Mapping[str, Any]) -> RouteMiddleware:
    status = str(raw.get("status", "enabled"))
    errors = _strings(raw.get("error"))
    allow = raw.get("ipAllowList")
    if isinstance(allow, Mapping):
        ranges = ",".join(sorted(_strings(allow.get("sourceRange"))))
        return RouteMiddleware(_local(name), "ipAllowList", (("sourceRange", ranges),), status, errors)
    strip = raw.get("stripPrefix")
    if isinstance(strip, Mapping):
        prefixes = ",".join(sorted(_strings(strip.get("prefixes"))))
        return RouteMiddleware(_local(name), "stripPrefix", (("prefixes", prefixes),), status, errors)
    retry = raw.get("retry")
    if isinstance(retry, Mapping):
        return RouteMiddleware(_local(name), "retry", (("attempts", str(retry.get("attempts"))),), status, errors)
    return RouteMiddleware(_local(name), "other", (), status, errors)


@dataclass(frozen=True)
class RouteTable:
    """Routers, services and middlewares, each sorted by name."""

    routers: tuple[RouteRouter, ...] = ()
    services: tuple[RouteService, ...] = ()
    middlewares: tuple[RouteMiddleware, ...] = ()

    @staticmethod
    def from_dynamic(http: Mapping[str, Any]) -> RouteTable:
        """Parse the ``http`` section of a dynamic configuration, or the API's items keyed by name."""

        def items(section: str) -> list[tuple[str, Mapping[str, Any]]]:
            raw = http.get(section) or {}
            return sorted(((str(k), v) for k, v in raw.items() if isinstance(v, Mapping)), key=lambda kv: _local(kv[0]))

        return RouteTable(
            routers=tuple(_router(name, raw) for name, raw in items("routers")),
            services=tuple(_service(name, raw) for name, raw in items("services")),
            middlewares=tuple(_middleware(name, raw) for name, raw in items("middlewares")),
        )

    def select(self, prefix: str) -> RouteTable:
        """Only the objects whose name starts with ``prefix`` (one tenant's, see ``renderers.traefik``)."""
        return RouteTable(
            routers=tuple(r for r in self.routers if r.name.startswith(prefix)),
            services=tuple(s for s in self.services if s.name.startswith(prefix)),
            middlewares=tuple(m for m in self.middlewares if m.name.startswith(prefix)),
        )

    @property
    def empty(self) -> bool:
        return not (self.routers or self.services or self.middlewares)

    def names(self) -> frozenset[str]:
        return frozenset(
            [r.name for r in self.routers] + [s.name for s in self.services] + [m.name for m in self.middlewares]
        )


@dataclass(frozen=True)
class RouteVerdict:
    """Whether Traefik serves exactly the expected table: ``reason`` is a CamelCase word for the status row."""

    ready: bool
    reason: str
    message: str = ""
    # True when Traefik has loaded the expected configuration (servers may still be DOWN).
    loaded: bool = False
    down: tuple[str, ...] = field(default=())


_Named = TypeVar("_Named", RouteRouter, RouteService, RouteMiddleware)


def _by_name(objects: Iterable[_Named]) -> dict[str, _Named]:
    return {o.name: o for o in objects}


def verify(expected: RouteTable, observed: RouteTable) -> RouteVerdict:
    """Compare one tenant's expected routing with what Traefik reports for it.

    Reasons, in the order checked: ``RouterMissing`` (an expected router is not listed), ``RouterError`` (listed
    but disabled or with errors), ``ConfigPending`` (Traefik still serves other content: an older file, or objects
    that should be gone), ``ServerDown`` (configuration loaded, but some router has no server UP behind it),
    ``SomeServersDown`` (ready: every router reaches a healthy server, some servers fail their health check;
    a version's own router, to one member of a weighted service, is not counted),
    ``ServersUp``.
    """
    want_routers, have_routers = _by_name(expected.routers), _by_name(observed.routers)
    for name, router in want_routers.items():
        have = have_routers.get(name)
        if have is None:
            return RouteVerdict(False, "RouterMissing", f"router {name} not listed by Traefik")
        if have.status != "enabled" or have.errors:
            detail = "; ".join(have.errors) or have.status
            return RouteVerdict(False, "RouterError", f"router {name}: {detail}")
        if not have.same_config(router):
            return RouteVerdict(False, "ConfigPending", f"router {name} still has its previous configuration")
    extra = sorted(set(have_routers) - set(want_routers))
    if extra:
        return RouteVerdict(False, "ConfigPending", f"routers still listed: {', '.join(extra)}")

    have_services = _by_name(observed.services)
    for service in expected.services:
        have_service = have_services.get(service.name)
        if have_service is None or not have_service.same_config(service):
            return RouteVerdict(False, "ConfigPending", f"service {service.name} not yet loaded as written")
        if have_service.status != "enabled" or have_service.errors:
            detail = "; ".join(have_service.errors) or have_service.status
            return RouteVerdict(False, "RouterError", f"service {service.name}: {detail}")
    extra = sorted(set(have_services) - {s.name for s in expected.services})
    if extra:
        return RouteVerdict(False, "ConfigPending", f"services still listed: {', '.join(extra)}")

    have_middlewares = _by_name(observed.middlewares)
    for middleware in expected.middlewares:
        have_middleware = have_middlewares.get(middleware.name)
        if have_middleware is None or not have_middleware.same_config(middleware):
            return RouteVerdict(False, "ConfigPending", f"middleware {middleware.name} not yet loaded as written")
    extra = sorted(set(have_middlewares) - {m.name for m in expected.middlewares})
    if extra:
        return RouteVerdict(False, "ConfigPending", f"middlewares still listed: {', '.join(extra)}")

    down: list[str] = []
    serving: set[str] = set()  # services with at least one server UP
    for service in expected.services:
        if service.kind != "loadBalancer":
            continue
        status = dict(have_services[service.name].server_status)
        if set(status) != set(service.servers):
            # Traefik lists server status once the new servers are wired in; until then it is not serving them.
            return RouteVerdict(False, "ConfigPending", f"service {service.name}: servers not yet in rotation")
        down.extend(url for url in service.servers if status[url] != "UP")
        if any(status[url] == "UP" for url in service.servers):
            serving.add(service.name)
    servers = sum(len(s.servers) for s in expected.services)
    if not down:
        return RouteVerdict(
            True, "ServersUp", f"{len(expected.routers)} router(s), {servers} server(s) UP", loaded=True
        )
    failing = f"health check failing for {', '.join(sorted(down))}"
    by_name = _by_name(expected.services)
    # A router straight to one member of a weighted service (a version's own router, reached by the version
    # header for the canary's checks) does not make the route unready: clients go through the weighted split.
    members = {member for s in expected.services if s.kind == "weighted" for member, _ in s.members}
    dead = [
        r.name for r in expected.routers if r.service not in members and not _can_serve(r.service, by_name, serving)
    ]
    if dead:
        message = f"no server UP behind {', '.join(dead)}; {failing}"
        return RouteVerdict(False, "ServerDown", message, loaded=True, down=tuple(down))
    # Every router still reaches a healthy server: the route serves, with less capacity.
    return RouteVerdict(True, "SomeServersDown", failing, loaded=True, down=tuple(down))


def _can_serve(name: str, services: Mapping[str, RouteService], serving: set[str]) -> bool:
    service = services.get(name)
    if service is None:
        return False
    if service.kind == "weighted":
        # Weighted services carry a health check in our files, so Traefik skips a member with no server UP.
        return any(weight > 0 and member in serving for member, weight in service.members)
    return name in serving


@dataclass(frozen=True)
class RouteFile:
    """One tenant's Traefik dynamic file: desired (rendered from the spec and the planned backends) or observed
    (read from the dynamic directory). ``content`` is the exact text; on the desired side it is None while a
    server address is known only after apply (a container still to be created). ``owner`` is the owner id in
    the file's header (observed; None when the header is not one of ours)."""

    tenant: str
    name: str
    table: RouteTable
    content: str | None = None
    owner: str | None = None
    # Observed only: the file could not be parsed (hand-edited into invalid YAML).
    unreadable: bool = False

    @property
    def key(self) -> str:
        return self.name

    @property
    def empty(self) -> bool:
        return self.table.empty


def parse_route_file(tenant: str, name: str, text: str) -> RouteFile:
    """An observed file from its text. A file that is not valid YAML or not a dynamic configuration is marked
    unreadable (the plan rewrites it); an empty one has an empty table."""
    header = parse_file_header(text)
    owner = header[0] if header is not None and header[1] == tenant else None
    unreadable = RouteFile(tenant, name, RouteTable(), text, owner, unreadable=True)
    try:
        data = yaml.load(text, Loader=_LOADER)
        if data is None:
            return RouteFile(tenant, name, RouteTable(), text, owner)
        http = data.get("http", {}) if isinstance(data, Mapping) else None
        if not isinstance(http, Mapping):
            return unreadable
        return RouteFile(tenant, name, RouteTable.from_dynamic(http), text, owner)
    except (yaml.YAMLError, TypeError, ValueError, AttributeError):
        return unreadable
