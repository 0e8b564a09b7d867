"""Input models: a tenant and the catalog as stored, validated field by field and bounded (pure).

``desired_state.specs.build_tenant`` validates raw rows (from the loader or the YAML file) with these models and
then resolves catalog defaults into specs. Every bound comes from ``desired_state.bounds``. Validators raise
``ValueError`` with what would be accepted; they never quote an environment value, only its variable name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from desired_state.bounds import (
    MAX_CPUS,
    MAX_ENV_NAME,
    MAX_ENV_TOTAL,
    MAX_ENV_VALUE,
    MAX_ENV_VARS,
    MAX_HOST,
    MAX_IMAGE_REF,
    MAX_MIGRATE_ARG,
    MAX_MIGRATE_ARGS,
    MAX_REPLICAS,
    MAX_SERVICES,
    MAX_URL_PATH,
    MAX_VERSIONS,
    MAX_WEIGHT,
    MIN_CPUS,
)
from desired_state.check_inputs import CheckInput, check_list, unique_names
from desired_state.networks import check_cidrs
from desired_state.sizes import parse_memory

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
# A path prefix ends up inside a Traefik rule between backticks: only URL path characters, no backtick.
ROUTE_PATH_RE = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$")
# Track of each version, by position: the first version keeps the plain container names (so adding a second
# version never replaces the running ones), the second is track "b".
VERSION_TRACKS = ("", "b")

MemoryBytes = Annotated[int, BeforeValidator(parse_memory)]


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _check_image(value: str) -> str:
    if len(value) > MAX_IMAGE_REF or not IMAGE_RE.match(value):
        raise ValueError(f"is not a Docker image reference such as erp/demo-svc:1 (at most {MAX_IMAGE_REF} characters)")
    return value


def _check_health(value: str) -> str:
    if (
        len(value) > MAX_URL_PATH
        or not value.startswith("/")
        or any(c.isspace() for c in value)
        or not value.isprintable()
    ):
        raise ValueError(
            f"must be an URL path starting with / and without spaces, e.g. /health (at most {MAX_URL_PATH} characters)"
        )
    return value


def check_dns_name(value: str) -> str:
    """A host or domain: lowercase DNS labels, at least two, at most ``MAX_HOST`` characters."""
    name = value.lower().rstrip(".")
    if len(name) > MAX_HOST:
        raise ValueError(f"must be a DNS name such as acme.erp.test (at most {MAX_HOST} characters)")
    labels = name.split(".")
    if len(labels) < 2 or not all(DOMAIN_LABEL_RE.match(label) for label in labels):
        raise ValueError("must be a DNS name such as acme.erp.test")
    return name


def _check_route_path(value: str) -> str | None:
    path = value.rstrip("/")
    if not path:
        return None  # "/" is the whole host, the same as no path
    segments = path.split("/")[1:]
    if len(path) > MAX_URL_PATH or not ROUTE_PATH_RE.match(path) or "//" in path or {".", ".."} & set(segments):
        raise ValueError(
            "must be an URL path prefix such as /api (letters, digits and -._~ only, no spaces, no . or .. segments, "
            f"at most {MAX_URL_PATH} characters)"
        )
    return path


def _check_migrate(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError('must be a list of strings (the argv), e.g. ["/bin/erp-migrate"]')
    if not value or len(value) > MAX_MIGRATE_ARGS:
        raise ValueError(f"must have 1 to {MAX_MIGRATE_ARGS} arguments")
    for arg in value:
        if not isinstance(arg, str) or "\x00" in arg or len(arg) > MAX_MIGRATE_ARG:
            raise ValueError(f"each argument must be a string without NUL bytes, at most {MAX_MIGRATE_ARG} characters")
    return value


ImageRef = Annotated[str, BeforeValidator(lambda v: _check_image(v) if isinstance(v, str) else v)]
HealthPath = Annotated[str, BeforeValidator(lambda v: _check_health(v) if isinstance(v, str) else v)]
Port = Annotated[int, Field(ge=1, le=65535)]
Cpus = Annotated[float, Field(ge=MIN_CPUS, le=MAX_CPUS, allow_inf_nan=False)]
Replicas = Annotated[int, Field(ge=0, le=MAX_REPLICAS)]
Cidrs = Annotated[tuple[str, ...], BeforeValidator(check_cidrs)]
# NULL (None): no list of the service's own; a tenant service then inherits the catalog's checks.
CheckList = Annotated[tuple[CheckInput, ...] | None, BeforeValidator(check_list), AfterValidator(unique_names)]


class CatalogEntry(FrozenModel):
    """One of the ERP's services as the platform offers it, with defaults tenants inherit."""

    name: str
    image: ImageRef
    port: Port = 8080
    health: HealthPath = "/health"
    memory: MemoryBytes = 128 * 1024**2
    cpus: Cpus = 0.5
    # argv of the migration command run in a one-off container of the new image before an upgrade.
    migrate: Annotated[tuple[str, ...] | None, BeforeValidator(_check_migrate)] = None
    # The public service is the one exposed at the tenant's domain when no route is configured.
    public: bool = False
    # Smoke tests every tenant of the service inherits (docs/operations.md "Checks"), and whether a failing one
    # after an upgrade rolls the upgrade back (None: ``RECONCILER_CHECK_ROLLBACK``).
    checks: CheckList = None
    checks_rollback: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SERVICE_NAME_RE.match(value):
            raise ValueError("must be a lowercase service name such as a, b or billing (letters and digits)")
        return value


class RouteInput(FrozenModel):
    """Where a tenant service is exposed through Traefik; unset host means the tenant's domain."""

    host: str | None = None
    path: str | None = None
    allow: Cidrs = ()
    deny: Cidrs = ()

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else check_dns_name(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _check_route_path(value)


class VersionInput(FrozenModel):
    """One of at most two versions of a service served side by side, with its share of the traffic."""

    image: ImageRef
    # Unset: the service's replicas.
    replicas: Replicas | None = None
    weight: Annotated[int, Field(ge=0, le=MAX_WEIGHT)] = 1


def check_env(value: Any) -> dict[str, str]:
    """An env map: bounded names matching ``ENV_NAME_RE``, string-like values without NUL, bounded sizes.

    Errors name the variable, never its value (values hold passwords).
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of variable names to strings")
    if len(value) > MAX_ENV_VARS:
        raise ValueError(f"has {len(value)} variables; at most {MAX_ENV_VARS}")
    env: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > MAX_ENV_NAME or not ENV_NAME_RE.match(key):
            shown = key[:40] + "…" if isinstance(key, str) and len(key) > 40 else key
            raise ValueError(
                f"variable name {shown!r} is not a valid environment variable name "
                f"(letters, digits and _, not starting with a digit, at most {MAX_ENV_NAME} characters)"
            )
        if isinstance(item, (dict, list)):
            raise ValueError(f"value of {key} must be a string")
        text = "" if item is None else str(item)
        if "\x00" in text:
            raise ValueError(f"value of {key} contains a NUL byte, which no process environment can hold")
        if len(text) > MAX_ENV_VALUE:
            raise ValueError(f"value of {key} has {len(text)} characters; at most {MAX_ENV_VALUE}")
        env[key] = text
    total = sum(len(k) + len(v) + 2 for k, v in env.items())
    if total > MAX_ENV_TOTAL:
        raise ValueError(f"takes {total} characters in all; at most {MAX_ENV_TOTAL}")
    return env


class ServiceOverride(FrozenModel):
    """A tenant's choice for one catalog service; unset fields inherit the catalog's defaults."""

    image: ImageRef | None = None
    replicas: Replicas = 1
    memory: MemoryBytes | None = None
    cpus: Cpus | None = None
    env: Annotated[dict[str, str], BeforeValidator(check_env)] = Field(default_factory=dict)
    route: RouteInput | None = None
    versions: tuple[VersionInput, ...] = ()
    # The tenant's own checks replace the catalog's; an empty list means none (NULL: the catalog's).
    checks: CheckList = None

    @field_validator("versions", mode="before")
    @classmethod
    def _versions(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, (list, tuple)) and len(value) > MAX_VERSIONS:
            raise ValueError(f"has {len(value)} versions; at most {MAX_VERSIONS} can share a service")
        return value

    @field_validator("versions")
    @classmethod
    def _versions_usable(cls, value: tuple[VersionInput, ...]) -> tuple[VersionInput, ...]:
        if value and sum(version.weight for version in value) <= 0:
            raise ValueError("weights sum to 0; give at least one version a positive weight, e.g. 90 and 10")
        if len({version.image for version in value}) < len(value):
            raise ValueError("two versions use the same image; versions must differ in image")
        return value


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
        return check_dns_name(value)

    @field_validator("services", mode="before")
    @classmethod
    def _services(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and len(value) > MAX_SERVICES:
            raise ValueError(f"has {len(value)} services; at most {MAX_SERVICES}")
        return value
