"""Validated desired state: frozen pydantic specs built from database rows or YAML.

Sits between the storage layer (``desired_state.tables`` / ``desired_state.yaml_io``) and the pure
renderers. ``build_tenant`` turns one tenant's raw input into a ``TenantSpec`` or raises ``SpecError``
naming the tenant, the field and the bad value; the loader catches it per tenant so one malformed tenant
never stops the others. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

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


class ServiceOverride(FrozenModel):
    """A tenant's choice for one catalog service; unset fields inherit the catalog's defaults."""

    image: ImageRef | None = None
    replicas: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] = 1
    memory: MemoryBytes | None = None
    cpus: Cpus | None = None
    env: dict[str, str] = Field(default_factory=dict)

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


class ServiceSpec(FrozenModel):
    """A tenant's service with every default resolved: what the renderers consume."""

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


def build_tenant(raw: Mapping[str, Any], catalog: Mapping[str, CatalogEntry]) -> TenantSpec:
    """Validate one tenant's raw input against the catalog and resolve defaults.

    ``raw`` has the shape of ``TenantInput``: name, domain, state and services (a mapping of catalog service
    name to overrides). Raises ``SpecError`` naming the tenant, the field and the value.
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
        services.append(
            ServiceSpec(
                name=service_name,
                image=override.image or entry.image,
                replicas=override.replicas,
                memory=override.memory if override.memory is not None else entry.memory,
                cpus=override.cpus if override.cpus is not None else entry.cpus,
                env=tuple(sorted(override.env.items())),
                port=entry.port,
                health=entry.health,
                migrate=entry.migrate,
                public=entry.public,
            )
        )
    return TenantSpec(name=tenant.name, domain=tenant.domain, state=tenant.state, services=tuple(services))
