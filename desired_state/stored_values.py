"""Tenant and catalog rows as stored, in the shape the YAML import compares and the export writes (read-only).

Shared by ``desired_state.row_writes`` (change detection) and ``desired_state.yaml_export``. Stored values stay as
the UI wrote them, except that memory sizes are normalised and JSON columns decoded when they can be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from desired_state.load import decode_json_column, route_rows, version_rows
from desired_state.sizes import format_memory, parse_memory


def stored_routing(
    connection: Connection, service_ids: Mapping[tuple[int, str], int]
) -> dict[int, tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
    """tenant_services.id → (route values or None, versions) as stored, in the shape of ``_service_values``."""
    ids = list(service_ids.values())
    stored: dict[int, tuple[dict[str, Any] | None, list[dict[str, Any]]]] = {i: (None, []) for i in ids}
    if not ids:
        return stored
    routes = connection.execute(route_rows(ids)).mappings()
    for row in routes:
        route = {
            "host": row["host"],
            "path": row["path"],
            "allow": decoded_or_text(row["allow"]),
            "deny": decoded_or_text(row["deny"]),
        }
        stored[row["tenant_service_id"]] = (route, stored[row["tenant_service_id"]][1])
    versions = connection.execute(version_rows(ids)).mappings()
    for row in versions:
        stored[row["tenant_service_id"]][1].append(
            {"image": row["image"], "replicas": row["replicas"], "weight": row["weight"]}
        )
    return stored


def canonical_memory(value: str | None) -> str | None:
    """``64M`` for any spelling of 64 MiB, so a UI-written "64m" does not count as a change; else as stored."""
    if value is None:
        return None
    try:
        return format_memory(parse_memory(value))
    except ValueError:
        return value


def decoded_or_text(value: object) -> object:
    """A JSON column read as text, decoded; malformed text stays text (it then differs from any valid value)."""
    try:
        return decode_json_column(value)
    except ValueError:
        return value
