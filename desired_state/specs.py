"""Validated desired state: frozen pydantic specs built from database rows or YAML.

Sits between the storage layer (``desired_state.tables`` / ``desired_state.yaml_io``) and the pure
renderers. ``build_tenant`` turns one tenant's raw input into a ``TenantSpec`` or raises ``SpecError``
naming the tenant, the field and the bad value; the loader catches it per tenant so one malformed tenant
never stops the others. No I/O here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

TenantState = Literal["running", "stopped", "absent"]
TENANT_STATES: tuple[TenantState, ...] = ("running", "stopped", "absent")

# A tenant name becomes part of container, network and volume names and a DNS label, so it is a
# lowercase DNS label; 40 characters leaves room for the name prefix, service and replica suffixes.
TENANT_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DOMAIN_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Docker reference grammar, simplified: registry/path:tag or @digest, no whitespace or shell characters.
IMAGE_RE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$")

MAX_REPLICAS = 20
# Two versions is what a weighted upgrade needs (old and new); more would make weights hard to reason about.
MAX_VERSIONS = 2
# Track of each version, by position: the first version keeps the plain container names (so adding a second
# version never replaces the running ones), the second is track "b".
VERSION_TRACKS = ("", "b")
# A path prefix ends up inside a Traefik rule between backticks: only URL path characters, no backtick.
ROUTE_PATH_RE = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
MIN_MEMORY = 6 * 1024**2  # Docker refuses memory limits under 6 MiB.


class SpecError(ValueError):
    """A tenant's desired state is invalid; carries what an operator needs to fix it."""

    def __init__(self, tenant: str, field: str, value: object, message: str) -> None:
        self.tenant = tenant
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"tenant {tenant!r}: {field} = {value!r}: {message}")


def parse_memory(value: object) -> int:
    """Parse a Docker-style size (``64M``, ``1g``, ``512MiB``, or bytes) into bytes."""
    if isinstance(value, bool):
        raise ValueError("is not a size; use bytes or a number with K, M or G, e.g. 64M")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise ValueError("is not a size; use bytes or a number with K, M or G, e.g. 64M")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    else:
        raise ValueError("is not a size; use bytes or a number with K, M or G, e.g. 64M")
    if size < MIN_MEMORY:
        raise ValueError("is below the 6M minimum Docker accepts")
    return size


def format_memory(size: int) -> str:
    """Render bytes the way operators write them (``64M``), for YAML export and plan output."""
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


MemoryBytes = Annotated[int, BeforeValidator(parse_memory)]


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _check_image(value: str) -> str:
    if not IMAGE_RE.match(value):
        raise ValueError("is not a Docker image reference such as erp/demo-svc:1")
    return value


def _check_health(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise ValueError("must be an URL path starting with / and without spaces, e.g. /health")
    return value


ImageRef = Annotated[str, BeforeValidator(lambda v: _check_image(str(v)) if isinstance(v, str) else v)]
HealthPath = Annotated[str, BeforeValidator(lambda v: _check_health(v) if isinstance(v, str) else v)]
Port = Annotated[int, Field(ge=1, le=65535)]
Cpus = Annotated[float, Field(gt=0, le=64)]


class CatalogEntry(FrozenModel):
    """One of the ERP's services as the platform offers it, with defaults tenants inherit."""

    name: str
    image: ImageRef
    port: Port = 8080
    health: HealthPath = "/health"
    memory: MemoryBytes = 128 * 1024**2
    cpus: Cpus = 0.5
    # argv of the migration command run in a one-off container of the new image before an upgrade.
    migrate: tuple[str, ...] | None = None
    # The public service is the one exposed at the tenant's domain when no route is configured.
    public: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SERVICE_NAME_RE.match(value):
            raise ValueError("must be a lowercase service name such as a, b or billing (letters and digits)")
        return value


def _check_cidr(value: object) -> str:
    """One IPv4 or IPv6 network in CIDR form (a bare address means just that address), normalised."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32")
    try:
        network = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32") from exc
        raise ValueError(f"{value!r} has host bits set; did you mean {loose}?") from exc
    return str(network)


def _check_cidrs(value: Any) -> Any:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError("must be a list of CIDRs such as [203.0.113.0/24, 2001:db8::/32]")
    return tuple(_check_cidr(item) for item in value)


def _check_host(value: str) -> str:
    host = value.lower().rstrip(".")
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(DOMAIN_LABEL_RE.match(label) for label in labels):
        raise ValueError("must be a DNS name such as acme.erp.test")
    return host


def _check_route_path(value: str) -> str | None:
    path = value.rstrip("/")
    if not path:
        return None  # "/" is the whole host, the same as no path
    if not ROUTE_PATH_RE.match(path) or "//" in path:
        raise ValueError("must be an URL path prefix such as /api (letters, digits and -._~ only, no spaces)")
    return path


Cidrs = Annotated[tuple[str, ...], BeforeValidator(_check_cidrs)]


class RouteInput(FrozenModel):
    """Where a tenant service is exposed through Traefik; unset host means the tenant's domain."""

    host: str | None = None
    path: str | None = None
    allow: Cidrs = ()
    deny: Cidrs = ()

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else _check_host(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _check_route_path(value)


class VersionInput(FrozenModel):
    """One of at most two versions of a service served side by side, with its share of the traffic."""

    image: ImageRef
    # Unset: the service's replicas.
    replicas: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] | None = None
    weight: Annotated[int, Field(ge=0, le=1000)] = 1


class ServiceOverride(FrozenModel):
    """A tenant's choice for one catalog service; unset fields inherit the catalog's defaults."""

    image: ImageRef | None = None
    replicas: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] = 1
    memory: MemoryBytes | None = None
    cpus: Cpus | None = None
    env: dict[str, str] = Field(default_factory=dict)
    route: RouteInput | None = None
    versions: tuple[VersionInput, ...] = ()

    @field_validator("versions", mode="before")
    @classmethod
    def _versions(cls, value: Any) -> Any:
        return () if value is None else value

    @field_validator("versions")
    @classmethod
    def _versions_usable(cls, value: tuple[VersionInput, ...]) -> tuple[VersionInput, ...]:
        if len(value) > MAX_VERSIONS:
            raise ValueError(f"has {len(value)} versions; at most {MAX_VERSIONS} can share a service")
        if value and sum(version.weight for version in value) <= 0:
            raise ValueError("weights sum to 0; give at least one version a positive weight, e.g. 90 and 10")
        if len({version.image for version in value}) < len(value):
            raise ValueError("two versions use the same image; versions must differ in image")
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of variable names to strings")
        for key, item in value.items():
            if not isinstance(key, str) or not ENV_NAME_RE.match(key):
                raise ValueError(f"variable name {key!r} is not a valid environment variable name")
            if isinstance(item, (dict, list)):
                raise ValueError(f"value of {key} must be a string")
        return {k: "" if v is None else str(v) for k, v in value.items()}


class TenantInput(FrozenModel):
    """A tenant as stored: what the web UI wrote, before catalog defaults are applied."""

    name: str
    domain: str
    state: TenantState = "running"
    services: dict[str, ServiceOverride] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TENANT_NAME_RE.match(value):
            raise ValueError(
                "must be a DNS-safe slug: lowercase letters, digits and '-', starting with a letter, 2-40 characters"
            )
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        domain = value.lower().rstrip(".")
        labels = domain.split(".")
        if len(domain) > 253 or len(labels) < 2 or not all(DOMAIN_LABEL_RE.match(label) for label in labels):
            raise ValueError("must be a DNS name such as acme.erp.test")
        return domain


class RouteSpec(FrozenModel):
    """A resolved route: host (never empty), optional path prefix, allow and deny lists (normalised CIDRs)."""

    host: str
    path: str | None = None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """How operators write the route: ``acme.erp.test`` or ``acme.erp.test/api``."""
        return f"{self.host}{self.path or ''}"

    def overlaps(self, other: RouteSpec) -> bool:
        """Whether some request could match both (a path prefix matches every longer path, even mid-segment)."""
        if self.host != other.host:
            return False
        mine, theirs = self.path or "", other.path or ""
        return mine.startswith(theirs) or theirs.startswith(mine)


class VersionSpec(FrozenModel):
    """One version of a service: its track (part of container identity), image, replicas and traffic weight."""

    track: str
    image: str
    replicas: int
    weight: int


class ServiceSpec(FrozenModel):
    """A tenant's service with every default resolved: what the renderers consume.

    ``image`` is the first version's image and ``replicas`` the total over all versions; ``versions`` is
    empty when the service runs a single version (then ``image`` and ``replicas`` say everything).
    """

    name: str
    image: str
    replicas: int
    memory: int
    cpus: float
    env: tuple[tuple[str, str], ...]
    port: int
    health: str
    migrate: tuple[str, ...] | None
    public: bool
    route: RouteSpec | None = None
    versions: tuple[VersionSpec, ...] = ()

    def tracks(self) -> tuple[VersionSpec, ...]:
        """The versions to run; a single-version service is one version on the plain track."""
        if self.versions:
            return self.versions
        return (VersionSpec(track="", image=self.image, replicas=self.replicas, weight=1),)


class TenantSpec(FrozenModel):
    name: str
    domain: str
    state: TenantState
    services: tuple[ServiceSpec, ...]

    def service(self, name: str) -> ServiceSpec | None:
        return next((s for s in self.services if s.name == name), None)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(tenant)"


def _dig(raw: Mapping[str, Any], loc: tuple[int | str, ...]) -> object:
    value: object = raw
    for part in loc:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return None
    return value


def spec_error_from_validation(tenant: str, raw: Mapping[str, Any], exc: ValidationError) -> SpecError:
    """The first pydantic error as a SpecError naming field and value (the rest are appended)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    value = first.get("input", _dig(raw, loc))
    message = str(first["msg"]).removeprefix("Value error, ")
    if len(errors) > 1:
        others = "; ".join(
            f"{_format_loc(tuple(e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}" for e in errors[1:]
        )
        message = f"{message} (also: {others})"
    return SpecError(tenant, _format_loc(loc), value, message)


def parse_catalog(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, CatalogEntry]:
    """Validate the service catalog; an invalid entry is a platform-wide error (no tenant can be trusted)."""
    catalog: dict[str, CatalogEntry] = {}
    for name, fields in raw.items():
        try:
            catalog[name] = CatalogEntry(name=name, **dict(fields))
        except ValidationError as exc:
            raise spec_error_from_validation("(catalog)", {"name": name, **dict(fields)}, exc) from exc
    return catalog


def _in_base_domain(host: str, base_domain: str | None) -> bool:
    if not base_domain:
        return True
    base = base_domain.lower().rstrip(".")
    return host == base or host.endswith(f".{base}")


def _resolve_route(
    tenant: TenantInput, service: str, entry: CatalogEntry, override: ServiceOverride, base_domain: str | None
) -> RouteSpec | None:
    """The catalog's public service is exposed at the tenant's domain unless the tenant says otherwise;
    other services only when they have a route."""
    given = override.route
    if given is None and not entry.public:
        return None
    given = given or RouteInput()
    route = RouteSpec(host=given.host or tenant.domain, path=given.path, allow=given.allow, deny=given.deny)
    field = f"services.{service}.route.host" if given.host else "domain"
    if not _in_base_domain(route.host, base_domain):
        raise SpecError(
            tenant.name, field, route.host, f"is outside the platform's base domain; use a name under {base_domain}"
        )
    if not allowed_networks(route.allow, route.deny):
        raise SpecError(
            tenant.name,
            f"services.{service}.route.deny",
            list(route.deny),
            "leaves no client address allowed (every allowed range is denied)",
        )
    return route


_Net = TypeVar("_Net", ipaddress.IPv4Network, ipaddress.IPv6Network)


def _subtract(keep: list[_Net], drop: list[_Net]) -> list[_Net]:
    for denied in drop:
        remaining: list[_Net] = []
        for network in keep:
            if not network.overlaps(denied):
                remaining.append(network)
            elif not denied.supernet_of(network):
                remaining.extend(network.address_exclude(denied))
        keep = remaining
    return list(ipaddress.collapse_addresses(keep))


def allowed_networks(
    allow: tuple[str, ...], deny: tuple[str, ...]
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The client ranges a route admits: ``allow`` (everything when empty) minus ``deny``, collapsed.

    Traefik has only an allow list, so a deny list is served as this complement.
    """
    allowed = [ipaddress.ip_network(cidr) for cidr in (allow or ("0.0.0.0/0", "::/0"))]
    denied = [ipaddress.ip_network(cidr) for cidr in deny]
    v4 = _subtract(
        [n for n in allowed if isinstance(n, ipaddress.IPv4Network)],
        [n for n in denied if isinstance(n, ipaddress.IPv4Network)],
    )
    v6 = _subtract(
        [n for n in allowed if isinstance(n, ipaddress.IPv6Network)],
        [n for n in denied if isinstance(n, ipaddress.IPv6Network)],
    )
    return [*v4, *v6]


def _resolve_versions(tenant: str, service: str, override: ServiceOverride) -> tuple[VersionSpec, ...]:
    if not override.versions:
        return ()
    if override.image is not None:
        raise SpecError(
            tenant,
            f"services.{service}.image",
            override.image,
            "cannot be set together with versions; put each image in versions",
        )
    return tuple(
        VersionSpec(
            track=VERSION_TRACKS[index],
            image=version.image,
            replicas=version.replicas if version.replicas is not None else override.replicas,
            weight=version.weight,
        )
        for index, version in enumerate(override.versions)
    )


def build_tenant(
    raw: Mapping[str, Any], catalog: Mapping[str, CatalogEntry], base_domain: str | None = None
) -> TenantSpec:
    """Validate one tenant's raw input against the catalog and resolve defaults.

    ``raw`` has the shape of ``TenantInput``: name, domain, state and services (a mapping of catalog service
    name to overrides). With ``base_domain`` set, every route host must lie under it. Raises ``SpecError``
    naming the tenant, the field and the value.
    """
    tenant_name = str(raw.get("name", "?"))
    try:
        tenant = TenantInput.model_validate(raw)
    except ValidationError as exc:
        raise spec_error_from_validation(tenant_name, raw, exc) from exc
    services = []
    for service_name in sorted(tenant.services):
        entry = catalog.get(service_name)
        if entry is None:
            known = ", ".join(sorted(catalog)) or "none"
            raise SpecError(
                tenant.name, f"services.{service_name}", service_name, f"is not in the service catalog (known: {known})"
            )
        override = tenant.services[service_name]
        versions = _resolve_versions(tenant.name, service_name, override)
        services.append(
            ServiceSpec(
                name=service_name,
                image=versions[0].image if versions else override.image or entry.image,
                replicas=sum(v.replicas for v in versions) if versions else override.replicas,
                memory=override.memory if override.memory is not None else entry.memory,
                cpus=override.cpus if override.cpus is not None else entry.cpus,
                env=tuple(sorted(override.env.items())),
                port=entry.port,
                health=entry.health,
                migrate=entry.migrate,
                public=entry.public,
                route=_resolve_route(tenant, service_name, entry, override, base_domain),
                versions=versions,
            )
        )
    _check_own_routes(tenant.name, services)
    return TenantSpec(name=tenant.name, domain=tenant.domain, state=tenant.state, services=tuple(services))


def _check_own_routes(tenant: str, services: list[ServiceSpec]) -> None:
    """Two services of one tenant may share a host with different paths, never the same host and path."""
    seen: dict[tuple[str, str | None], str] = {}
    for service in services:
        if service.route is None:
            continue
        key = (service.route.host, service.route.path)
        if key in seen:
            raise SpecError(
                tenant,
                f"services.{service.name}.route",
                service.route.address,
                f"is already the route of service {seen[key]}; give one of them another host or path",
            )
        seen[key] = service.name


def route_conflicts(tenants: Mapping[str, TenantSpec], claim_order: Mapping[str, int]) -> dict[str, SpecError]:
    """Cross-tenant check: a host and path may belong to one tenant only.

    When two tenants' routes overlap, the tenant whose claim is newer (higher ``claim_order``, e.g. the row id)
    gets the error and the older keeps serving. Absent tenants claim nothing. Called by the loader.
    """
    owners: list[tuple[RouteSpec, str]] = []
    errors: dict[str, SpecError] = {}
    for name in sorted(tenants, key=lambda n: (claim_order.get(n, 0), n)):
        spec = tenants[name]
        if spec.state == "absent":
            continue
        claimed: list[tuple[RouteSpec, str]] = []
        for service in spec.services:
            route = service.route
            if route is None:
                continue
            holder = next((owner for owned, owner in owners if owned.overlaps(route)), None)
            if holder is not None:
                errors[name] = SpecError(
                    name,
                    f"services.{service.name}.route",
                    route.address,
                    f"overlaps a route of tenant {holder!r}, which claimed it first; choose another host or path",
                )
                break
            claimed.append((route, name))
        if name not in errors:
            owners.extend(claimed)
    return errors
