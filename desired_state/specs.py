"""Validated desired state: frozen pydantic specs built from database rows or YAML.

Sits between the storage layer (``desired_state.tables`` / ``desired_state.yaml_io``) and the pure
renderers. ``build_tenant`` validates one tenant's raw input with the input models (``desired_state.inputs``),
resolves catalog defaults and checks the operator's limits (``desired_state.bounds.InputLimits``), giving a
``TenantSpec`` or raising ``SpecError`` naming the tenant, the field and a shortened bad value; the loader
catches it per tenant so one malformed tenant never stops the others. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError

from desired_state.bounds import MAX_SHOWN_VALUE, InputLimits
from desired_state.inputs import (
    VERSION_TRACKS,
    CatalogEntry,
    FrozenModel,
    RouteInput,
    ServiceOverride,
    TenantInput,
    TenantState,
)
from desired_state.networks import count_allowed_networks
from desired_state.sizes import format_memory
from reconciler.core.checks import Check

# Other errors of one tenant appended to the first one's message; the rest are counted.
_MAX_OTHER_ERRORS = 3


def _is_env_field(field: str) -> bool:
    return "env" in field.split(".")


def _safe_value(field: str, value: object) -> object:
    """The value an error may carry: for an env field only the variable names, never a value."""
    if not _is_env_field(field):
        return value
    if isinstance(value, Mapping):
        return sorted(str(key) for key in value)
    return f"<{type(value).__name__}, hidden>"


def shorten(text: str, limit: int = MAX_SHOWN_VALUE) -> str:
    """``text`` cut to ``limit`` characters, the cut marked by an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SpecError(ValueError):
    """A tenant's desired state is invalid; carries what an operator needs to fix it.

    ``value`` never holds an environment value (an env field's error carries the variable names only) and is
    shown shortened to ``MAX_SHOWN_VALUE`` characters.
    """

    def __init__(self, tenant: str, field: str, value: object, message: str) -> None:
        self.tenant = tenant
        self.field = field
        self.value = _safe_value(field, value)
        self.message = message
        super().__init__(f"tenant {shorten(repr(tenant))}: {field} = {self.shown}: {message}")

    @property
    def shown(self) -> str:
        """The bad value as error messages show it: its repr, shortened."""
        return shorten(repr(self.value))


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
    # Smoke tests through the route (the tenant's, else the catalog's) and whether a failing one after an upgrade
    # rolls it back (None: the setting). Not part of the spec's digest: changing a check rolls nothing out.
    checks: tuple[Check, ...] = Field(default=(), exclude=True)
    checks_rollback: bool | None = Field(default=None, exclude=True)

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


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def spec_error_from_validation(tenant: str, raw: Mapping[str, Any], exc: ValidationError) -> SpecError:
    """The first pydantic error as a SpecError naming field and value (a few others are appended)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    value = first.get("input", _dig(raw, loc))
    message = _message(first)
    if len(errors) > 1:
        others = [f"{_format_loc(tuple(e['loc']))}: {_message(e)}" for e in errors[1 : 1 + _MAX_OTHER_ERRORS]]
        if len(errors) > 1 + _MAX_OTHER_ERRORS:
            others.append(f"{len(errors) - 1 - _MAX_OTHER_ERRORS} more")
        message = f"{message} (also: {'; '.join(others)})"
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
    tenant: TenantInput,
    service: str,
    entry: CatalogEntry,
    override: ServiceOverride,
    base_domain: str | None,
    limits: InputLimits,
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
    ranges = count_allowed_networks(route.allow, route.deny, limits.max_allowed_ranges)
    if ranges == 0:
        raise SpecError(
            tenant.name,
            f"services.{service}.route.deny",
            list(route.deny),
            "leaves no client address allowed (every allowed range is denied)",
        )
    if ranges > limits.max_allowed_ranges:
        raise SpecError(
            tenant.name,
            f"services.{service}.route.deny",
            list(route.deny),
            f"with the allow list compiles to more than {limits.max_allowed_ranges} allowed ranges (Traefik has only "
            "an allow list, so a deny list is served as its complement); deny wider ranges or list who is allowed",
        )
    return route


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


def _check_limits(tenant: str, service: ServiceSpec, override: ServiceOverride, limits: InputLimits) -> None:
    """The operator's limits (settings) on a resolved service; the field is the override's, else the catalog's."""
    if service.memory > limits.max_service_memory:
        field = f"services.{service.name}.memory" if override.memory is not None else f"catalog.{service.name}.memory"
        raise SpecError(
            tenant,
            field,
            format_memory(service.memory),
            f"is more than the {format_memory(limits.max_service_memory)} a service may have on this platform",
        )
    if service.cpus > limits.max_service_cpus:
        field = f"services.{service.name}.cpus" if override.cpus is not None else f"catalog.{service.name}.cpus"
        raise SpecError(
            tenant, field, service.cpus, f"is more than the {limits.max_service_cpus:g} CPUs a service may have"
        )


def build_tenant(
    raw: Mapping[str, Any],
    catalog: Mapping[str, CatalogEntry],
    base_domain: str | None = None,
    limits: InputLimits | None = None,
) -> TenantSpec:
    """Validate one tenant's raw input against the catalog and resolve defaults.

    ``raw`` has the shape of ``TenantInput``: name, domain, state and services (a mapping of catalog service
    name to overrides). With ``base_domain`` set, every route host must lie under it; ``limits`` default to the
    hard bounds. Raises ``SpecError`` naming the tenant, the field and the value.
    """
    limits = limits or InputLimits()
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
        service = ServiceSpec(
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
            route=_resolve_route(tenant, service_name, entry, override, base_domain, limits),
            versions=versions,
        )
        service = _resolve_checks(tenant.name, service, entry, override)
        _check_limits(tenant.name, service, override, limits)
        services.append(service)
    _check_own_routes(tenant.name, services)
    return TenantSpec(name=tenant.name, domain=tenant.domain, state=tenant.state, services=tuple(services))


def _resolve_checks(tenant: str, service: ServiceSpec, entry: CatalogEntry, override: ServiceOverride) -> ServiceSpec:
    """The tenant's checks, else the catalog's; they go through the service's route, so it needs one and each
    check's path must lie under the route's path prefix (Traefik would send it elsewhere)."""
    own = override.checks is not None
    given = override.checks if override.checks is not None else entry.checks or ()
    if not given:
        return service
    field = f"services.{service.name}.checks" if own else f"catalog.{service.name}.checks"
    route = service.route
    if route is None:
        raise SpecError(
            tenant,
            field,
            [c.name for c in given],
            "go through the service's route, and this service has none; give it a route (or public: true in the "
            "catalog) or an empty list of checks",
        )
    for index, check in enumerate(given):
        prefix = route.path
        if prefix and not (check.path == prefix or check.path.startswith((f"{prefix}/", f"{prefix}?"))):
            raise SpecError(
                tenant, f"{field}.{index}.path", check.path, f"is not under the route's path {prefix}; start it with it"
            )
    return service.model_copy(
        update={"checks": tuple(c.to_check() for c in given), "checks_rollback": entry.checks_rollback}
    )


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
