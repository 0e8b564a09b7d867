"""Load the desired state: database rows → validated ``DesiredState``.

First step of every reconcile pass (the ``load`` arrow in ARCHITECTURE.md), called by the runtime and by
``reconciler plan``. Five queries whatever the number of tenants (catalog, tenants, tenant services, their
routes and versions), in one read-only transaction so the UI's edits are seen whole or not at all. Each
tenant is validated on its own: a ``SpecError`` lands in ``DesiredState.errors`` under the tenant's name and
the other tenants load normally, so one bad edit in the UI never stops the platform: any exception while one
tenant is decoded or validated (a wrong JSON type, a NUL byte, a huge number) becomes that tenant's error, with
its env values scrubbed from the message, and a broken catalog row only affects the tenants that use it. Routes
are then checked across tenants: when two tenants claim the same host and path, the newer tenant (higher id)
gets the error. Bounds: ``desired_state.bounds``.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, Select, Text, cast, select, type_coerce
from sqlalchemy.types import NullType

from desired_state.bounds import MAX_JSON_TEXT, InputLimits
from desired_state.inputs import CatalogEntry
from desired_state.model import DesiredState
from desired_state.route_claims import route_conflicts
from desired_state.specs import SpecError, TenantSpec, build_tenant, parse_catalog, shorten
from desired_state.tables import CatalogService, Tenant, TenantService, TenantServiceRoute, TenantServiceVersion

log = logging.getLogger(__name__)


# Columns read wherever catalog and tenant-service rows are loaded (here, YAML import and export). JSON columns
# come back as text so one malformed value is reported on its tenant instead of failing the whole query.
CATALOG_COLUMNS = (
    CatalogService.name,
    CatalogService.image,
    CatalogService.port,
    CatalogService.health_path,
    CatalogService.memory,
    CatalogService.cpus,
    cast(CatalogService.migrate_command, Text).label("migrate_command"),
    # Raw, so that SQLite text such as 'yes' is validated instead of turned into True by the driver layer.
    type_coerce(CatalogService.public, NullType()).label("public"),
    cast(CatalogService.checks, Text).label("checks"),
    type_coerce(CatalogService.checks_rollback, NullType()).label("checks_rollback"),
)
TENANT_SERVICE_COLUMNS = (
    TenantService.id,
    TenantService.tenant_id,
    TenantService.service,
    TenantService.image,
    TenantService.replicas,
    TenantService.memory,
    TenantService.cpus,
    cast(TenantService.env, Text).label("env"),
    cast(TenantService.checks, Text).label("checks"),
)


def load_desired_state(
    engine: Engine, base_domain: str | None = None, limits: InputLimits | None = None
) -> DesiredState:
    """Read every tenant and the catalog; valid tenants become specs, invalid ones errors.

    With ``base_domain`` set (``Settings.base_domain``), every route host must lie under it. ``limits`` (from
    the settings) default to what this host can give a container.
    """
    limits = limits or InputLimits.for_host()
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # PostgreSQL's default READ COMMITTED gives each statement its own snapshot; one snapshot for
            # the three queries keeps a tenant's generation consistent with the services read for it.
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            stored_catalog = catalog_rows(connection)
            tenant_rows = connection.execute(
                select(Tenant.id, Tenant.name, Tenant.domain, Tenant.state, Tenant.generation, Tenant.uid).order_by(
                    Tenant.name
                )
            ).all()
            service_rows = _service_rows(connection)
            _attach_routing(connection, service_rows)

    catalog, catalog_errors = _parse_catalog_rows(stored_catalog)
    tenants: dict[str, TenantSpec] = {}
    errors: dict[str, SpecError] = {}
    generations: dict[str, int] = {}
    tenant_ids: dict[str, int] = {}
    uids: dict[str, str] = {}
    for tenant_id, stored_name, domain, state, generation, uid in tenant_rows:
        name = str(stored_name)
        tenant_ids[name] = tenant_id
        if uid:
            uids[name] = str(uid)
        overrides = service_rows.get(tenant_id, {})
        try:
            generations[name] = _generation(name, generation)
            services = _decode_routing(name, _decode_env(name, overrides))
            raw = {"name": name, "domain": domain, "state": state, "services": services}
            tenants[name] = build_tenant_checked(raw, catalog, catalog_errors, base_domain, limits)
        except Exception as exc:  # one tenant's rows, however broken, never stop the others
            errors[name] = scrub_env_values(_as_spec_error(name, exc), overrides)
    for name, conflict in route_conflicts(tenants, tenant_ids).items():
        del tenants[name]
        errors[name] = conflict
    return DesiredState(catalog=catalog, tenants=tenants, errors=errors, generations=generations, uids=uids)


def decode_json_column(value: object) -> object:
    """Decode a JSON column read as text; raises ``ValueError`` on malformed, too long or too deep text.

    The loader reads JSON columns as text so that one malformed value (possible on SQLite, which does not
    check JSON) is reported on its tenant instead of failing the whole query.
    """
    if value is None or not isinstance(value, str):
        return value
    if len(value) > MAX_JSON_TEXT:
        raise ValueError(f"{len(value)} characters of JSON; at most {MAX_JSON_TEXT}")
    try:
        return json.loads(value)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def _generation(tenant: str, value: object) -> int:
    # Echoed into tenant_statuses.observed_generation (bigint): anything else would fail the status write.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise SpecError(tenant, "generation", value, "must be a whole number from 0 to 2^63-1")
    return value


def _as_spec_error(tenant: str, exc: Exception) -> SpecError:
    """A ``SpecError`` as it is; anything else (a bug or an input no check foresaw) named by its type only."""
    if isinstance(exc, SpecError):
        return exc
    log.warning("tenant=%s could not be loaded (%s)", tenant, type(exc).__name__, exc_info=exc)
    return SpecError(
        tenant, "(tenant)", None, f"could not be loaded ({type(exc).__name__}: {shorten(str(exc), 120)}); fix its rows"
    )


def scrub_env_values(error: SpecError, overrides: Mapping[str, Mapping[str, Any]]) -> SpecError:
    """``error`` with every env value of the tenant's rows replaced by ``***``, wherever the message quotes it.

    Defence in depth: the checks never quote env values, but a message from an unforeseen exception might.
    """
    secrets = sorted(_env_strings(overrides), key=len, reverse=True)
    text = str(error)
    if not any(secret in text for secret in secrets):
        return error
    value, message = error.value, error.message
    for secret in secrets:
        message = message.replace(secret, "***")
        if isinstance(value, str):
            value = value.replace(secret, "***")
        elif secret in repr(value):
            value = "***"
    return SpecError(error.tenant, error.field, value, message)


def _env_strings(overrides: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The env values of a tenant's rows worth scrubbing (three characters or more), decoded or as stored."""
    found: set[str] = set()
    for override in overrides.values():
        raw = override.get("env")
        try:
            env = decode_json_column(raw)
        except ValueError:
            env = None
        if isinstance(raw, str) and not isinstance(env, Mapping):
            found.add(raw)
        if isinstance(env, Mapping):
            found.update(str(v) for v in env.values() if isinstance(v, (str, int, float)) and len(str(v)) >= 3)
    return {s for s in found if len(s) >= 3}


def catalog_rows(connection: Connection) -> list[dict[str, Any]]:
    """The catalog as stored (JSON read as text, so a malformed value is reported, not fatal); shared with export."""
    rows = connection.execute(select(*CATALOG_COLUMNS).order_by(CatalogService.name)).mappings()
    return [dict(row) for row in rows]


def _service_rows(connection: Connection) -> dict[int, dict[str, Any]]:
    """tenant id → {service name → raw override}, with NULL overrides dropped so catalog defaults apply.

    Each override also carries its row id under ``_id`` until ``_decode_routing`` removes it.
    """
    rows = connection.execute(
        select(*TENANT_SERVICE_COLUMNS).order_by(TenantService.tenant_id, TenantService.service)
    ).mappings()
    services: dict[int, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        override = {
            field: row[field]
            for field in ("image", "replicas", "memory", "cpus", "env", "checks")
            if row[field] is not None
        }
        override["_id"] = row["id"]
        services[row["tenant_id"]][row["service"]] = override
    return services


def route_rows(service_ids: list[int] | None = None) -> Select[int, str | None, str | None, str, str]:
    """Route rows with their JSON lists as text (decoded per tenant, so malformed JSON stays that tenant's)."""
    query = select(
        TenantServiceRoute.tenant_service_id,
        TenantServiceRoute.host,
        TenantServiceRoute.path,
        cast(TenantServiceRoute.allow, Text).label("allow"),
        cast(TenantServiceRoute.deny, Text).label("deny"),
    )
    return query if service_ids is None else query.where(TenantServiceRoute.tenant_service_id.in_(service_ids))


def version_rows(service_ids: list[int] | None = None) -> Select[int, str, int | None, int]:
    """Version rows in position order."""
    query = select(
        TenantServiceVersion.tenant_service_id,
        TenantServiceVersion.image,
        TenantServiceVersion.replicas,
        TenantServiceVersion.weight,
    ).order_by(TenantServiceVersion.tenant_service_id, TenantServiceVersion.position)
    return query if service_ids is None else query.where(TenantServiceVersion.tenant_service_id.in_(service_ids))


def _attach_routing(connection: Connection, services: dict[int, dict[str, Any]]) -> None:
    """Add each service's route row (``route``, JSON lists still text) and version rows (``versions``)."""
    by_id = {override["_id"]: override for overrides in services.values() for override in overrides.values()}
    routes = connection.execute(route_rows()).mappings()
    for row in routes:
        override = by_id.get(row["tenant_service_id"])
        if override is not None:
            override["route"] = {k: row[k] for k in ("host", "path", "allow", "deny") if row[k] is not None}
    versions = connection.execute(version_rows()).mappings()
    for row in versions:
        override = by_id.get(row["tenant_service_id"])
        if override is not None:
            version = {k: row[k] for k in ("image", "replicas", "weight") if row[k] is not None}
            override.setdefault("versions", []).append(version)


def _decode_routing(tenant: str, services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Drop the row ids and decode the route's JSON lists; malformed JSON is this tenant's error."""
    decoded: dict[str, dict[str, Any]] = {}
    for service, override in services.items():
        decoded[service] = {k: v for k, v in override.items() if k != "_id"}
        route = override.get("route")
        if route is None:
            continue
        route = dict(route)
        for field in ("allow", "deny"):
            if field not in route:
                continue
            try:
                route[field] = decode_json_column(route[field])
            except ValueError as exc:
                raise SpecError(
                    tenant,
                    f"services.{service}.route.{field}",
                    route[field],
                    f"is not valid JSON ({exc}); expected a list of CIDRs",
                ) from exc
        decoded[service]["route"] = route
    return decoded


def catalog_input(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``CatalogEntry`` fields of a catalog row (column names → spec names), NULLs dropped.

    ``migrate_command`` must already be decoded. Shared with ``yaml_io`` so both read the catalog alike.
    """
    fields = {
        "image": row["image"],
        "port": row["port"],
        "health": row["health_path"],
        "memory": row["memory"],
        "cpus": row["cpus"],
        "migrate": row["migrate_command"],
        "public": row["public"],
        "checks": row.get("checks"),
        "checks_rollback": row.get("checks_rollback"),
    }
    return {key: value for key, value in fields.items() if value is not None}


def parse_catalog_row(row: Mapping[str, Any]) -> CatalogEntry:
    """Validate one catalog row whose JSON columns are still text; raises ``SpecError`` for tenant (catalog)."""
    name = str(row["name"])
    try:
        migrate = decode_json_column(row["migrate_command"])
    except ValueError as exc:
        raise SpecError("(catalog)", "migrate", row["migrate_command"], f"is not valid JSON ({exc})") from exc
    try:
        checks = decode_json_column(row.get("checks"))
    except ValueError as exc:
        raise SpecError("(catalog)", "checks", row.get("checks"), f"is not valid JSON ({exc})") from exc
    try:
        return parse_catalog({name: catalog_input({**row, "migrate_command": migrate, "checks": checks})})[name]
    except SpecError:
        raise
    except Exception as exc:  # a value no check foresaw: this entry is broken, the others are not
        raise SpecError("(catalog)", name, None, f"could not be read ({type(exc).__name__})") from exc


def _parse_catalog_rows(rows: list[dict[str, Any]]) -> tuple[dict[str, CatalogEntry], dict[str, SpecError]]:
    """Each catalog entry on its own: a broken entry only affects the tenants that use it."""
    catalog: dict[str, CatalogEntry] = {}
    errors: dict[str, SpecError] = {}
    for row in rows:
        try:
            catalog[row["name"]] = parse_catalog_row(row)
        except SpecError as exc:
            log.warning("catalog service %r is invalid, tenants using it are skipped: %s", row["name"], exc)
            errors[row["name"]] = exc
    return catalog, errors


def _decode_env(tenant: str, services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    decoded: dict[str, dict[str, Any]] = {}
    for service, override in services.items():
        decoded[service] = dict(override)
        if "checks" in override:
            try:
                decoded[service]["checks"] = decode_json_column(override["checks"])
            except ValueError as exc:
                raise SpecError(
                    tenant,
                    f"services.{service}.checks",
                    override["checks"],
                    f"is not valid JSON ({exc}); expected a list of checks",
                ) from exc
        if "env" not in override:
            continue
        try:
            decoded[service]["env"] = decode_json_column(override["env"])
        except ValueError as exc:
            raise SpecError(
                tenant, f"services.{service}.env", override["env"], f"is not valid JSON ({exc}); expected an object"
            ) from exc
    return decoded


def build_tenant_checked(
    raw: Mapping[str, Any],
    catalog: Mapping[str, CatalogEntry],
    catalog_errors: Mapping[str, SpecError],
    base_domain: str | None = None,
    limits: InputLimits | None = None,
) -> TenantSpec:
    """``build_tenant``, except that a service whose catalog entry is broken is reported as such.

    ``catalog`` holds only the valid entries, so ``build_tenant`` would call the service unknown; the
    operator needs to hear which catalog entry to fix instead. The tenant's own fields are checked first.
    """
    try:
        return build_tenant(raw, catalog, base_domain, limits)
    except SpecError as exc:
        service = exc.field.removeprefix("services.")
        problem = catalog_errors.get(service) if exc.field.startswith("services.") else None
        if problem is None:
            raise
        raise SpecError(
            exc.tenant,
            exc.field,
            service,
            f"catalog entry {service!r} is invalid: {problem.field} = {problem.shown}: {problem.message}",
        ) from exc
