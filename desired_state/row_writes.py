"""Writes of the YAML import: catalog and tenant rows made exactly what validated inputs say, touching only rows
that differ (so an unchanged tenant keeps its generation).

Called by ``desired_state.yaml_import`` inside its transaction, after every entry and tenant was validated.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from desired_state.check_inputs import CheckInput
from desired_state.inputs import CatalogEntry, TenantInput
from desired_state.load import CATALOG_COLUMNS, TENANT_SERVICE_COLUMNS
from desired_state.sizes import format_memory
from desired_state.stored_values import canonical_memory, decoded_or_text, stored_routing
from desired_state.tables import CatalogService, Tenant, TenantService, TenantServiceRoute, TenantServiceVersion

# Columns of tenant_services; route and versions live in their own tables.
_SERVICE_COLUMNS = ("image", "replicas", "memory", "cpus", "env", "checks")


def stored_checks(checks: tuple[CheckInput, ...] | None) -> list[dict[str, Any]] | None:
    """A validated list of checks as stored: the fields the file gave (defaults left out), NULL for none."""
    if checks is None:
        return None
    return [check.model_dump(exclude_unset=True) for check in checks]


def read_catalog(connection: Connection) -> dict[str, tuple[int, dict[str, Any]]]:
    """name → (id, row with JSON columns as text), locked against concurrent edits until commit."""
    rows = connection.execute(select(CatalogService.id, *CATALOG_COLUMNS).with_for_update()).mappings()
    return {row["name"]: (row["id"], dict(row)) for row in rows}


def _catalog_values(fields: Mapping[str, Any], entry: CatalogEntry) -> dict[str, Any]:
    """Column values for a validated entry: the fields the file gave, normalised; the rest NULL (= default)."""
    return {
        "image": entry.image,
        "port": entry.port if "port" in fields else None,
        "health_path": entry.health if "health" in fields else None,
        "memory": format_memory(entry.memory) if "memory" in fields else None,
        "cpus": entry.cpus if "cpus" in fields else None,
        "migrate_command": list(entry.migrate) if entry.migrate is not None else None,
        "public": entry.public,
        "checks": stored_checks(entry.checks),
        "checks_rollback": entry.checks_rollback,
    }


def _stored_catalog_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row in the shape of ``_catalog_values``, for change detection."""
    return {
        "image": row["image"],
        "port": row["port"],
        "health_path": row["health_path"],
        "memory": canonical_memory(row["memory"]),
        "cpus": row["cpus"],
        "migrate_command": decoded_or_text(row["migrate_command"]),
        "public": bool(row["public"]),
        "checks": decoded_or_text(row["checks"]),
        "checks_rollback": None if row["checks_rollback"] is None else bool(row["checks_rollback"]),
    }


def write_catalog(
    connection: Connection,
    raw: Mapping[str, Mapping[str, Any]],
    entries: Mapping[str, CatalogEntry],
    stored: Mapping[str, tuple[int, dict[str, Any]]],
    now: datetime,
) -> tuple[int, int, int]:
    created = updated = unchanged = 0
    for name in sorted(entries):
        values = _catalog_values(raw[name], entries[name])
        if name not in stored:
            connection.execute(insert(CatalogService).values(name=name, created_at=now, updated_at=now, **values))
            created += 1
            continue
        row_id, row = stored[name]
        if _stored_catalog_values(row) == values:
            unchanged += 1
            continue
        connection.execute(update(CatalogService).where(CatalogService.id == row_id).values(updated_at=now, **values))
        updated += 1
    return created, updated, unchanged


def _service_values(tenant: TenantInput) -> dict[str, dict[str, Any]]:
    """Per service: its tenant_services columns plus ``route`` (route row values or None) and ``versions``."""
    return {
        name: {
            "image": override.image,
            "replicas": override.replicas,
            "memory": format_memory(override.memory) if override.memory is not None else None,
            "cpus": override.cpus,
            "env": dict(override.env),
            "checks": stored_checks(override.checks),
            "route": None
            if override.route is None
            else {
                "host": override.route.host,
                "path": override.route.path,
                "allow": list(override.route.allow) or None,
                "deny": list(override.route.deny) or None,
            },
            "versions": [
                {"image": version.image, "replicas": version.replicas, "weight": version.weight}
                for version in override.versions
            ],
        }
        for name, override in tenant.services.items()
    }


def write_tenants(
    connection: Connection, tenants: Mapping[str, TenantInput], now: datetime
) -> tuple[int, int, int, list[str]]:
    names = sorted(tenants)
    stored_tenants = {
        row["name"]: row
        for row in connection.execute(
            select(Tenant.id, Tenant.name, Tenant.domain, Tenant.state).where(Tenant.name.in_(names)).with_for_update()
        ).mappings()
    }
    stored_services: dict[int, dict[str, dict[str, Any]]] = {}
    service_ids: dict[tuple[int, str], int] = {}
    service_rows = connection.execute(
        select(*TENANT_SERVICE_COLUMNS).join(Tenant, Tenant.id == TenantService.tenant_id).where(Tenant.name.in_(names))
    ).mappings()
    for row in service_rows:
        env = decoded_or_text(row["env"])
        stored_services.setdefault(row["tenant_id"], {})[row["service"]] = {
            "image": row["image"],
            "replicas": row["replicas"],
            "memory": canonical_memory(row["memory"]),
            "cpus": row["cpus"],
            "env": {} if env is None else env,
            "checks": decoded_or_text(row["checks"]),
        }
        service_ids[(row["tenant_id"], row["service"])] = row["id"]
    routing = stored_routing(connection, service_ids)
    for (tenant_id, service), service_id in service_ids.items():
        route, versions = routing[service_id]
        stored_services[tenant_id][service].update(route=route, versions=versions)

    created = updated = unchanged = 0
    changed: list[str] = []
    for name in names:
        tenant = tenants[name]
        services = _service_values(tenant)
        stored = stored_tenants.get(name)
        if stored is None:
            tenant_id = connection.execute(
                insert(Tenant)
                .values(
                    name=name, domain=tenant.domain, state=tenant.state, generation=1, created_at=now, updated_at=now
                )
                .returning(Tenant.id)
            ).scalar_one()
            _write_services(connection, tenant_id, services, {}, {}, now)
            created += 1
            changed.append(name)
            continue
        tenant_id = stored["id"]
        old_services = stored_services.get(tenant_id, {})
        if (stored["domain"], stored["state"], old_services) == (tenant.domain, tenant.state, services):
            unchanged += 1
            continue
        connection.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(domain=tenant.domain, state=tenant.state, generation=Tenant.generation + 1, updated_at=now)
        )
        _write_services(connection, tenant_id, services, old_services, service_ids, now)
        updated += 1
        changed.append(name)
    return created, updated, unchanged, changed


def _write_services(
    connection: Connection,
    tenant_id: int,
    services: Mapping[str, dict[str, Any]],
    old: Mapping[str, dict[str, Any]],
    ids: Mapping[tuple[int, str], int],
    now: datetime,
) -> None:
    """Make the tenant's service rows (and their route and version rows) exactly ``services``, touching only
    rows that differ."""
    removed = [ids[(tenant_id, name)] for name in old if name not in services]
    if removed:
        connection.execute(delete(TenantService).where(TenantService.id.in_(removed)))
    for name, values in sorted(services.items()):
        columns = {key: values[key] for key in _SERVICE_COLUMNS}
        if name not in old:
            service_id = connection.execute(
                insert(TenantService)
                .values(tenant_id=tenant_id, service=name, created_at=now, updated_at=now, **columns)
                .returning(TenantService.id)
            ).scalar_one()
            _write_routing(connection, service_id, values, None, now)
            continue
        service_id = ids[(tenant_id, name)]
        if {key: old[name][key] for key in _SERVICE_COLUMNS} != columns:
            connection.execute(
                update(TenantService).where(TenantService.id == service_id).values(updated_at=now, **columns)
            )
        _write_routing(connection, service_id, values, old[name], now)


def _write_routing(
    connection: Connection,
    service_id: int,
    values: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    now: datetime,
) -> None:
    """Route and version rows of one service: rewritten when they differ from what is stored."""
    if old is None or old["route"] != values["route"]:
        if old is not None:
            connection.execute(delete(TenantServiceRoute).where(TenantServiceRoute.tenant_service_id == service_id))
        if values["route"] is not None:
            connection.execute(
                insert(TenantServiceRoute).values(
                    tenant_service_id=service_id, created_at=now, updated_at=now, **values["route"]
                )
            )
    if old is None or old["versions"] != values["versions"]:
        if old is not None:
            connection.execute(delete(TenantServiceVersion).where(TenantServiceVersion.tenant_service_id == service_id))
        for position, version in enumerate(values["versions"]):
            connection.execute(
                insert(TenantServiceVersion).values(
                    tenant_service_id=service_id, position=position, created_at=now, updated_at=now, **version
                )
            )
