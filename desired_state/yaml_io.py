"""YAML import and export of the desired state: the same rows the web UI writes, as one reviewable file.

Beside the pipeline rather than in it: ``reconciler import`` / ``export`` (and GitOps jobs) call these to
fill or dump the tables that ``load.load_desired_state`` reads. The format (docs/schema.md)::

    catalog:
      a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 64M, cpus: 0.25, public: true}
      b: {image: "erp/demo-svc:1", migrate: ["/bin/erp-migrate"]}
    tenants:
      - name: acme
        domain: acme.erp.test
        state: running
        services:
          a: {replicas: 2, route: {deny: [203.0.113.0/24]}}
          b: {image: "erp/demo-svc:2", env: {ERP_LOCALE: fa_IR}}
          c:
            route: {path: /reports, allow: [10.0.0.0/8]}
            versions:
              - {image: "erp/demo-svc:1", weight: 90}
              - {image: "erp/demo-svc:2", weight: 10, replicas: 1}

Import is all-or-nothing: every catalog entry and every tenant is validated (against the database's catalog
updated by the file's) before anything is written, and any problem is reported with its file position.
Catalog entries and tenants named in the file are created or replaced; a tenant's services become exactly
the file's; tenants and catalog entries *not* in the file are left alone, so a file may carry a subset
(deleting is the UI's job, or set ``state: absent``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import yaml
from sqlalchemy import Connection, Engine, Text, cast, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from desired_state.load import (
    CATALOG_COLUMNS,
    TENANT_SERVICE_COLUMNS,
    build_tenant_checked,
    catalog_rows,
    decode_json_column,
    parse_catalog_row,
)
from desired_state.specs import (
    CatalogEntry,
    SpecError,
    TenantInput,
    format_memory,
    parse_catalog,
    parse_memory,
)
from desired_state.tables import CatalogService, Tenant, TenantService, TenantServiceRoute, TenantServiceVersion

TOP_LEVEL_KEYS = ("catalog", "tenants")
CATALOG_FIELDS = ("image", "port", "health", "memory", "cpus", "migrate", "public")
SERVICE_FIELDS = ("image", "replicas", "memory", "cpus", "env", "route", "versions")
# Columns of tenant_services; route and versions live in their own tables.
_SERVICE_COLUMNS = ("image", "replicas", "memory", "cpus", "env")

# Position in the YAML document as string parts (list indices as "0", "1", ...), the key of the mark index.
_Path = tuple[str, ...]


class YamlImportError(ValueError):
    """The file cannot be imported; nothing was written. Each problem names its position and the fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


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

    def __str__(self) -> str:
        return (
            f"tenants: {self.created} created, {self.updated} updated, {self.unchanged} unchanged; "
            f"catalog: {self.catalog_created} created, {self.catalog_updated} updated, "
            f"{self.catalog_unchanged} unchanged"
        )


# ------------------------------------------------------------------------------------------------ parse


@dataclass(frozen=True)
class _Document:
    data: Any
    marks: dict[_Path, yaml.Mark]
    source: str

    def where(self, path: _Path) -> str:
        """``source:line:column`` of the deepest node on ``path`` that the file has, else just ``source``."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark is not None:
                return f"{self.source}:{mark.line + 1}:{mark.column + 1}"
        return self.source


def _parse(text: str, source: str) -> _Document:
    # One parse gives both the node tree (for positions) and the data; SafeLoader builds plain types only.
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlImportError([f"{source}: the document is empty; expected a mapping with catalog and tenants"])
        marks: dict[_Path, yaml.Mark] = {}
        problems: list[str] = []
        _index(node, (), marks, problems, source, set())
        if problems:
            raise YamlImportError(problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = f"{exc.problem} ({exc.context})" if exc.context else str(exc.problem)
        raise YamlImportError([f"{where}: YAML syntax error: {problem}"]) from exc
    except yaml.YAMLError as exc:
        raise YamlImportError([f"{source}: YAML error: {exc}"]) from exc
    finally:
        loader.dispose()
    return _Document(data=data, marks=marks, source=source)


def _index(
    node: yaml.Node, path: _Path, marks: dict[_Path, yaml.Mark], problems: list[str], source: str, seen: set[int]
) -> None:
    """Record the start mark of every node by path; report duplicate keys, which PyYAML silently merges."""
    marks.setdefault(path, node.start_mark)
    if id(node) in seen:
        problems.append(f"{_at(source, node.start_mark)}: recursive alias at {_display(path)}")
        return
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, str(i)), marks, problems, source, seen | {id(node)})
    elif isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Mark] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(key_node.value)
            if key in first:
                problems.append(
                    f"{_at(source, key_node.start_mark)}: duplicate key {key!r} in {_display(path)} "
                    f"(first at line {first[key].line + 1})"
                )
                continue
            first[key] = key_node.start_mark
            _index(value_node, (*path, key), marks, problems, source, seen | {id(node)})


def _at(source: str, mark: yaml.Mark) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}"


def _display(path: _Path) -> str:
    """``tenants[1].services.a.replicas`` from ("tenants", "1", "services", "a", "replicas")."""
    if not path:
        return "(document)"
    text = path[0]
    for previous, part in pairwise(path):
        text += f"[{part}]" if previous == "tenants" and part.isdigit() else f".{part}"
    return text


def _field_path(field: str) -> _Path:
    return () if field == "(tenant)" else tuple(field.split("."))


# ------------------------------------------------------------------------------------------------ shape


@dataclass(frozen=True)
class _FileContent:
    catalog: dict[str, dict[str, Any]]
    # (index in the file, raw tenant) in file order.
    tenants: list[tuple[int, dict[str, Any]]]


def _shape(document: _Document) -> _FileContent:
    """Check the layout the specs cannot (top level, lists vs mappings) and normalise empty values."""
    data, problems = document.data, []

    def problem(path: _Path, message: str) -> None:
        problems.append(f"{document.where(path)}: {_display(path)}: {message}")

    if not isinstance(data, dict):
        raise YamlImportError([f"{document.where(())}: expected a mapping with the keys catalog and tenants"])
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problem((str(key),), f"unknown top-level key; expected {', '.join(TOP_LEVEL_KEYS)}")

    catalog: dict[str, dict[str, Any]] = {}
    raw_catalog = data.get("catalog") or {}
    if not isinstance(raw_catalog, dict):
        problem(("catalog",), "must be a mapping of service name to fields, e.g. a: {image: erp/demo-svc:1}")
        raw_catalog = {}
    for name, fields in raw_catalog.items():
        if fields is not None and not isinstance(fields, dict):
            problem(("catalog", str(name)), f"must be a mapping with the fields {', '.join(CATALOG_FIELDS)}")
            continue
        catalog[name] = dict(fields or {})

    tenants: list[tuple[int, dict[str, Any]]] = []
    raw_tenants = data.get("tenants") or []
    if not isinstance(raw_tenants, list):
        problem(("tenants",), "must be a list of tenants, each starting with '- name: ...'")
        raw_tenants = []
    first_index: dict[str, int] = {}
    for i, raw in enumerate(raw_tenants):
        path = ("tenants", str(i))
        if not isinstance(raw, dict):
            problem(path, "must be a mapping with name, domain, state and services")
            continue
        tenant = dict(raw)
        services = tenant.get("services")
        if services is None:
            tenant["services"] = {}
        elif isinstance(services, dict):
            # "b:" with nothing after it means the service with all catalog defaults.
            tenant["services"] = {svc: {} if fields is None else fields for svc, fields in services.items()}
        name = tenant.get("name")
        if isinstance(name, str) and name in first_index:
            problem((*path, "name"), f"tenant {name!r} is listed twice (first as tenants[{first_index[name]}])")
            continue
        if isinstance(name, str):
            first_index[name] = i
        tenants.append((i, tenant))
    if problems:
        raise YamlImportError(problems)
    return _FileContent(catalog=catalog, tenants=tenants)


# ------------------------------------------------------------------------------------------------ import


def import_yaml(engine: Engine, text: str, *, source: str = "<yaml>") -> ImportSummary:
    """Validate the whole file, then upsert its catalog entries and tenants in one transaction.

    ``source`` names the file in error messages. Raises ``YamlImportError`` (nothing written) if the file
    is not valid YAML, has the wrong layout, or any catalog entry or tenant fails validation.
    """
    document = _parse(text, source)
    content = _shape(document)
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            return _import(connection, document, content, now)
    except IntegrityError as exc:
        # Only reachable when another writer (the UI) created the same tenant or catalog entry meanwhile.
        raise YamlImportError(
            [f"{source}: the database changed during the import ({exc.orig}); nothing was written, import again"]
        ) from exc


def _import(connection: Connection, document: _Document, content: _FileContent, now: datetime) -> ImportSummary:
    problems: list[str] = []

    file_catalog: dict[str, CatalogEntry] = {}
    file_catalog_errors: dict[str, SpecError] = {}
    for name, fields in content.catalog.items():
        try:
            file_catalog[name] = parse_catalog({name: fields})[name]
        except SpecError as exc:
            file_catalog_errors[name] = exc
            path = ("catalog", str(name), *_field_path(exc.field))
            problems.append(f"{document.where(path)}: catalog.{name}: {exc.field} = {exc.value!r}: {exc.message}")

    # The merged catalog: the database's entries, replaced by the file's where it names them.
    db_catalog = _read_catalog(connection)
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
            where = document.where((*tenant_path, *_field_path(exc.field)))
            problems.append(
                f"{where}: {_display(tenant_path)} (tenant {exc.tenant!r}): {exc.field} = {exc.value!r}: {exc.message}"
            )
            continue
        # Validated above, so this cannot fail; it keeps the overrides as written (unset = catalog default).
        tenant_inputs[spec.name] = TenantInput.model_validate(raw)
    if problems:
        raise YamlImportError(problems)

    catalog_counts = _write_catalog(connection, content.catalog, file_catalog, db_catalog, now)
    created, updated, unchanged, changed = _write_tenants(connection, tenant_inputs, now)
    return ImportSummary(
        created=created,
        updated=updated,
        unchanged=unchanged,
        catalog_created=catalog_counts[0],
        catalog_updated=catalog_counts[1],
        catalog_unchanged=catalog_counts[2],
        changed_tenants=tuple(sorted(changed)),
    )


def _read_catalog(connection: Connection) -> dict[str, tuple[int, dict[str, Any]]]:
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
    }


def _stored_catalog_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row in the shape of ``_catalog_values``, for change detection."""
    return {
        "image": row["image"],
        "port": row["port"],
        "health_path": row["health_path"],
        "memory": _canonical_memory(row["memory"]),
        "cpus": row["cpus"],
        "migrate_command": _decoded_or_text(row["migrate_command"]),
        "public": bool(row["public"]),
    }


def _write_catalog(
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


def _stored_routing(
    connection: Connection, service_ids: Mapping[tuple[int, str], int]
) -> dict[int, tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
    """tenant_services.id → (route values or None, versions) as stored, in the shape of ``_service_values``."""
    ids = list(service_ids.values())
    stored: dict[int, tuple[dict[str, Any] | None, list[dict[str, Any]]]] = {i: (None, []) for i in ids}
    if not ids:
        return stored
    routes = connection.execute(
        select(
            TenantServiceRoute.tenant_service_id,
            TenantServiceRoute.host,
            TenantServiceRoute.path,
            cast(TenantServiceRoute.allow, Text).label("allow"),
            cast(TenantServiceRoute.deny, Text).label("deny"),
        ).where(TenantServiceRoute.tenant_service_id.in_(ids))
    ).mappings()
    for row in routes:
        route = {
            "host": row["host"],
            "path": row["path"],
            "allow": _decoded_or_text(row["allow"]),
            "deny": _decoded_or_text(row["deny"]),
        }
        stored[row["tenant_service_id"]] = (route, stored[row["tenant_service_id"]][1])
    versions = connection.execute(
        select(
            TenantServiceVersion.tenant_service_id,
            TenantServiceVersion.image,
            TenantServiceVersion.replicas,
            TenantServiceVersion.weight,
        )
        .where(TenantServiceVersion.tenant_service_id.in_(ids))
        .order_by(TenantServiceVersion.tenant_service_id, TenantServiceVersion.position)
    ).mappings()
    for row in versions:
        stored[row["tenant_service_id"]][1].append(
            {"image": row["image"], "replicas": row["replicas"], "weight": row["weight"]}
        )
    return stored


def _write_tenants(
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
        env = _decoded_or_text(row["env"])
        stored_services.setdefault(row["tenant_id"], {})[row["service"]] = {
            "image": row["image"],
            "replicas": row["replicas"],
            "memory": _canonical_memory(row["memory"]),
            "cpus": row["cpus"],
            "env": {} if env is None else env,
        }
        service_ids[(row["tenant_id"], row["service"])] = row["id"]
    routing = _stored_routing(connection, service_ids)
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


def _canonical_memory(value: str | None) -> str | None:
    """``64M`` for any spelling of 64 MiB, so a UI-written "64m" does not count as a change; else as stored."""
    if value is None:
        return None
    try:
        return format_memory(parse_memory(value))
    except ValueError:
        return value


def _decoded_or_text(value: object) -> object:
    """A JSON column read as text, decoded; malformed text stays text (it then differs from any valid value)."""
    try:
        return decode_json_column(value)
    except ValueError:
        return value


# ------------------------------------------------------------------------------------------------ export


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
        routing = _stored_routing(connection, {(row["tenant_id"], row["service"]): row["id"] for row in rows})
        services: dict[int, dict[str, dict[str, Any]]] = {}
        for row in rows:
            services.setdefault(row["tenant_id"], {})[row["service"]] = _export_service(row, *routing[row["id"]])

    tenants = [
        {"name": name, "domain": domain, "state": state, "services": services.get(tenant_id, {})}
        for tenant_id, name, domain, state in tenant_rows
    ]
    document = {"catalog": catalog, "tenants": tenants}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def _export_catalog_entry(row: Mapping[Any, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "image": row["image"],
        "port": row["port"],
        "health": row["health_path"],
        "memory": _canonical_memory(row["memory"]),
        "cpus": row["cpus"],
        "migrate": _decoded_or_text(row["migrate_command"]),
    }
    entry = {key: value for key, value in entry.items() if value is not None}
    # Only the exception is written: services are private unless marked public.
    if row["public"]:
        entry["public"] = True
    return entry


def _export_service(
    row: Mapping[Any, Any], route: Mapping[str, Any] | None, versions: list[dict[str, Any]]
) -> dict[str, Any]:
    env = _decoded_or_text(row["env"])
    service: dict[str, Any] = {
        "image": row["image"],
        "replicas": row["replicas"],
        "memory": _canonical_memory(row["memory"]),
        "cpus": row["cpus"],
        "env": dict(sorted(env.items())) if isinstance(env, dict) else env,
        # A route row without any field still exposes the service: exported as an empty mapping.
        "route": None if route is None else {k: v for k, v in route.items() if v is not None},
        "versions": [{k: v for k, v in version.items() if v is not None} for version in versions] or None,
    }
    return {key: value for key, value in service.items() if value is not None and (value != {} or key == "route")}
