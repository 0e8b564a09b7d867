"""One tenant read and written as a document, the way ``reconciler import`` writes a file: for the HTTP API.

Called by ``reconciler.api`` (tenant create, replace, patch, delete and plan preview). A document has the YAML
import's shape (``name``, ``domain``, ``state``, ``services`` of overrides). A write validates the document with the
loader's own function (``load.build_tenant_checked``, against the stored catalog, with the operator's bounds), so
a rejected write carries exactly the message the loader would write into the tenant's status; then
``row_writes.write_tenants`` makes the rows say it in one transaction, bumping ``generation`` only if something
changed. ``expected_generation`` (an ETag) makes a stale write fail instead of overwriting another editor's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from desired_state.bounds import InputLimits
from desired_state.inputs import CatalogEntry, TenantInput
from desired_state.load import TENANT_SERVICE_COLUMNS, build_tenant_checked, parse_catalog_row
from desired_state.row_writes import read_catalog, write_tenants
from desired_state.specs import SpecError, TenantSpec
from desired_state.stored_values import canonical_memory, decoded_or_text, stored_routing
from desired_state.tables import Tenant, TenantService


class TenantNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"tenant {name[:60]!r} does not exist")


class TenantExists(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"tenant {name!r} exists; replace or patch it instead")


class StaleGeneration(ValueError):
    """The tenant changed since the editor read it (its generation is not the one the write expected)."""

    def __init__(self, name: str, expected: int, current: int) -> None:
        self.current = current
        super().__init__(
            f"tenant {name!r} is at generation {current}, not {expected}: someone else changed it; "
            "read it again and re-apply your edit"
        )


@dataclass(frozen=True)
class StoredTenant:
    id: int
    document: dict[str, Any]
    generation: int
    uid: str | None


@dataclass(frozen=True)
class SavedTenant:
    before: dict[str, Any] | None
    after: StoredTenant
    changed: bool


def read_tenant(connection: Connection, name: str, *, lock: bool = False) -> StoredTenant | None:
    """The tenant as stored, in the import's document shape (values as the UI wrote them, memory normalised)."""
    query = select(Tenant.id, Tenant.name, Tenant.domain, Tenant.state, Tenant.generation, Tenant.uid).where(
        Tenant.name == name
    )
    row = connection.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None
    rows = [
        dict(r)
        for r in connection.execute(
            select(*TENANT_SERVICE_COLUMNS).where(TenantService.tenant_id == row.id).order_by(TenantService.service)
        ).mappings()
    ]
    routing = stored_routing(connection, {(r["tenant_id"], r["service"]): r["id"] for r in rows})
    services = {r["service"]: _service_document(r, *routing[r["id"]]) for r in rows}
    document = {"name": row.name, "domain": row.domain, "state": row.state, "services": services}
    return StoredTenant(id=row.id, document=document, generation=int(row.generation), uid=row.uid)


def _service_document(
    row: Mapping[str, Any], route: Mapping[str, Any] | None, versions: list[dict[str, Any]]
) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": row["image"],
        "replicas": row["replicas"],
        "memory": canonical_memory(row["memory"]),
        "cpus": row["cpus"],
        "env": decoded_or_text(row["env"]),
        "route": None if route is None else {k: v for k, v in route.items() if v is not None},
        "versions": [{k: v for k, v in version.items() if v is not None} for version in versions] or None,
    }
    return {key: value for key, value in service.items() if value is not None and (value != {} or key == "route")}


def stored_catalog(connection: Connection) -> tuple[dict[str, CatalogEntry], dict[str, SpecError]]:
    """The catalog's valid entries and the errors of the broken ones, locked until the transaction ends."""
    catalog: dict[str, CatalogEntry] = {}
    errors: dict[str, SpecError] = {}
    for name, (_row_id, row) in read_catalog(connection).items():
        try:
            catalog[name] = parse_catalog_row(row)
        except SpecError as exc:
            errors[name] = exc
    return catalog, errors


def validate_tenant(
    connection: Connection,
    document: Mapping[str, Any],
    base_domain: str | None,
    limits: InputLimits | None,
) -> TenantSpec:
    """The loader's validation of one tenant (raises ``SpecError`` with the loader's message)."""
    catalog, catalog_errors = stored_catalog(connection)
    return build_tenant_checked(document, catalog, catalog_errors, base_domain, limits or InputLimits.for_host())


def save_tenant(
    engine: Engine,
    document: Mapping[str, Any],
    *,
    exists: bool | None,
    expected_generation: int | None = None,
    base_domain: str | None = None,
    limits: InputLimits | None = None,
) -> SavedTenant:
    """Create (``exists=False``), replace (``True``) or upsert (None) one tenant in one transaction.

    Raises ``SpecError`` (invalid document, nothing written), ``TenantNotFound``, ``TenantExists`` or
    ``StaleGeneration``.
    """
    name = str(document.get("name", "?"))
    with engine.begin() as connection:
        stored = read_tenant(connection, name, lock=True)
        if exists is True and stored is None:
            raise TenantNotFound(name)
        if exists is False and stored is not None:
            raise TenantExists(name)
        if stored is not None and expected_generation is not None and stored.generation != expected_generation:
            raise StaleGeneration(name, expected_generation, stored.generation)
        validate_tenant(connection, document, base_domain, limits)
        # Validated above, so this cannot fail; it keeps the overrides as written (unset = catalog default).
        tenant = TenantInput.model_validate(document)
        _created, _updated, _unchanged, changed = write_tenants(connection, {tenant.name: tenant}, datetime.now(UTC))
        after = read_tenant(connection, tenant.name)
    assert after is not None
    return SavedTenant(before=stored.document if stored else None, after=after, changed=bool(changed))


def delete_tenant(engine: Engine, name: str, *, expected_generation: int | None = None) -> StoredTenant:
    """Delete the tenant's row (its services, routes and versions go with it; its status row and data volume stay:
    docs/schema.md ``tenants``). Returns what was deleted."""
    with engine.begin() as connection:
        stored = read_tenant(connection, name, lock=True)
        if stored is None:
            raise TenantNotFound(name)
        if expected_generation is not None and stored.generation != expected_generation:
            raise StaleGeneration(name, expected_generation, stored.generation)
        connection.execute(delete(Tenant).where(Tenant.id == stored.id))
    return stored


def tenant_names(engine: Engine) -> list[tuple[str, str, str, int]]:
    """(name, domain, state, generation) of every tenant, by name."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Tenant.name, Tenant.domain, Tenant.state, Tenant.generation).order_by(Tenant.name)
        ).all()
    return [(r.name, r.domain, r.state, int(r.generation)) for r in rows]
