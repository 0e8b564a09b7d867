"""YAML export: the catalog and every tenant in the import format (``desired_state.yaml_io``), read-only.

Called by ``reconciler export``. Values are written as stored (memory normalised), so the file shows what the UI
wrote, valid or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from sqlalchemy import Engine, select

from desired_state.load import TENANT_SERVICE_COLUMNS, catalog_rows
from desired_state.stored_values import canonical_memory, decoded_or_text, stored_routing
from desired_state.tables import Tenant, TenantService
from desired_state.yaml_sites import export_sites


def export_yaml(engine: Engine) -> str:
    """The catalog and every tenant in the import format, sorted, values as stored (memory normalised).

    Invalid stored values are exported as they are, so the file shows what the UI wrote; importing it back
    reports them. Importing an export of a valid database changes nothing.
    """
    with engine.connect() as connection, connection.begin():
        catalog = {row["name"]: _export_catalog_entry(row) for row in catalog_rows(connection)}
        tenant_rows = connection.execute(
            select(Tenant.id, Tenant.name, Tenant.domain, Tenant.state).order_by(Tenant.name)
        ).all()
        service_rows = connection.execute(
            select(*TENANT_SERVICE_COLUMNS).order_by(TenantService.tenant_id, TenantService.service)
        ).mappings()
        rows = [dict(row) for row in service_rows]
        routing = stored_routing(connection, {(row["tenant_id"], row["service"]): row["id"] for row in rows})
        sites = export_sites(connection)
        services: dict[int, dict[str, dict[str, Any]]] = {}
        for row in rows:
            services.setdefault(row["tenant_id"], {})[row["service"]] = _export_service(row, *routing[row["id"]])

    tenants = [
        {"name": name, "domain": domain, "state": state, "services": services.get(tenant_id, {})}
        for tenant_id, name, domain, state in tenant_rows
    ]
    document: dict[str, Any] = {"catalog": catalog, "tenants": tenants}
    if sites:  # a database without sites exports exactly as before
        document["sites"] = sites
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def _export_catalog_entry(row: Mapping[Any, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "image": row["image"],
        "port": row["port"],
        "health": row["health_path"],
        "memory": canonical_memory(row["memory"]),
        "cpus": row["cpus"],
        "migrate": decoded_or_text(row["migrate_command"]),
        "checks": decoded_or_text(row["checks"]),
        "checks_rollback": bool(row["checks_rollback"])
        if isinstance(row["checks_rollback"], int)
        else row["checks_rollback"],
    }
    entry = {key: value for key, value in entry.items() if value is not None}
    # Only the exception is written: services are private unless marked public.
    if row["public"]:
        entry["public"] = True
    return entry


def _export_service(
    row: Mapping[Any, Any], route: Mapping[str, Any] | None, versions: list[dict[str, Any]]
) -> dict[str, Any]:
    env = decoded_or_text(row["env"])
    service: dict[str, Any] = {
        "image": row["image"],
        "replicas": row["replicas"],
        "memory": canonical_memory(row["memory"]),
        "cpus": row["cpus"],
        "env": dict(sorted(env.items())) if isinstance(env, dict) else env,
        # An empty list is kept: it says "none of the catalog's checks" (NULL inherits them).
        "checks": decoded_or_text(row["checks"]),
        # A route row without any field still exposes the service: exported as an empty mapping.
        "route": None if route is None else {k: v for k, v in route.items() if v is not None},
        "versions": [{k: v for k, v in version.items() if v is not None} for version in versions] or None,
    }
    return {key: value for key, value in service.items() if value is not None and (value != {} or key == "route")}
