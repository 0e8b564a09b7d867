"""YAML import: validate a whole file against the database's catalog, then upsert it in one transaction.

Beside the pipeline: ``reconciler import`` (and GitOps jobs) call ``import_yaml``; the format and its rules are
described in ``desired_state.yaml_io``. Parsing is ``desired_state.yaml_document``, the writes are
``desired_state.row_writes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from desired_state.inputs import CatalogEntry, TenantInput
from desired_state.load import build_tenant_checked, parse_catalog_row
from desired_state.row_writes import read_catalog, write_catalog, write_tenants
from desired_state.specs import SpecError, parse_catalog
from desired_state.yaml_document import (
    Document,
    FileContent,
    YamlImportError,
    display_path,
    field_path,
    parse_document,
    shape_document,
)
from desired_state.yaml_sites import SiteCounts, check_sites, write_sites

SERVICE_FIELDS = ("image", "replicas", "memory", "cpus", "env", "route", "versions")


@dataclass(frozen=True)
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    catalog_created: int = 0
    catalog_updated: int = 0
    catalog_unchanged: int = 0
    # Tenants created or updated, sorted: the ones worth a "reconcile now" nudge.
    changed_tenants: tuple[str, ...] = field(default=())
    sites: SiteCounts | None = None  # None: the file has no sites

    def __str__(self) -> str:
        sites = self.sites
        return (
            f"tenants: {self.created} created, {self.updated} updated, {self.unchanged} unchanged; "
            f"catalog: {self.catalog_created} created, {self.catalog_updated} updated, "
            f"{self.catalog_unchanged} unchanged"
        ) + (f"; sites: {sites.created} created, {sites.updated} updated, {sites.unchanged} unchanged" if sites else "")


def import_yaml(engine: Engine, text: str, *, source: str = "<yaml>") -> ImportSummary:
    """Validate the whole file, then upsert its catalog entries and tenants in one transaction.

    ``source`` names the file in error messages. Raises ``YamlImportError`` (nothing written) if the file
    is not valid YAML, has the wrong layout, or any catalog entry or tenant fails validation.
    """
    document = parse_document(text, source)
    content = shape_document(document)
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            return _import(connection, document, content, now)
    except IntegrityError as exc:
        # Only reachable when another writer (the UI) created the same tenant or catalog entry meanwhile.
        raise YamlImportError(
            [f"{source}: the database changed during the import ({exc.orig}); nothing was written, import again"]
        ) from exc


def _import(connection: Connection, document: Document, content: FileContent, now: datetime) -> ImportSummary:
    problems: list[str] = []

    file_catalog: dict[str, CatalogEntry] = {}
    file_catalog_errors: dict[str, SpecError] = {}
    for name, fields in content.catalog.items():
        try:
            file_catalog[name] = parse_catalog({name: fields})[name]
        except SpecError as exc:
            file_catalog_errors[name] = exc
            path = ("catalog", str(name), *field_path(exc.field))
            problems.append(f"{document.where(path)}: catalog.{name}: {exc.field} = {exc.shown}: {exc.message}")

    # The merged catalog: the database's entries, replaced by the file's where it names them.
    db_catalog = read_catalog(connection)
    catalog: dict[str, CatalogEntry] = {}
    catalog_errors: dict[str, SpecError] = dict(file_catalog_errors)
    for name, (_row_id, row) in db_catalog.items():
        if name in content.catalog:
            continue
        try:
            catalog[name] = parse_catalog_row(row)
        except SpecError as exc:
            catalog_errors[name] = exc
    catalog.update(file_catalog)

    tenant_inputs: dict[str, TenantInput] = {}
    for index, raw in content.tenants:
        tenant_path = ("tenants", str(index))
        try:
            spec = build_tenant_checked(raw, catalog, catalog_errors)
        except SpecError as exc:
            where = document.where((*tenant_path, *field_path(exc.field)))
            tenant = f"{display_path(tenant_path)} (tenant {exc.tenant!r})"
            problems.append(f"{where}: {tenant}: {exc.field} = {exc.shown}: {exc.message}")
            continue
        # Validated above, so this cannot fail; it keeps the overrides as written (unset = catalog default).
        tenant_inputs[spec.name] = TenantInput.model_validate(raw)
    site_rows, site_problems = check_sites(document)
    problems.extend(site_problems)
    if problems:
        raise YamlImportError(problems)

    catalog_counts = write_catalog(connection, content.catalog, file_catalog, db_catalog, now)
    created, updated, unchanged, changed = write_tenants(connection, tenant_inputs, now)
    return ImportSummary(
        sites=write_sites(connection, site_rows, now) if site_rows else None,
        created=created,
        updated=updated,
        unchanged=unchanged,
        catalog_created=catalog_counts[0],
        catalog_updated=catalog_counts[1],
        catalog_unchanged=catalog_counts[2],
        changed_tenants=tuple(sorted(changed)),
    )
