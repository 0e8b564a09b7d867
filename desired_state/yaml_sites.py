"""The ``sites:`` section of the YAML import and export (format: docs/sites.md, rows: docs/schema.md "sites").

Called by ``desired_state.yaml_import`` (check every site of the file, then upsert them in the import's
transaction) and ``desired_state.yaml_export``. A site in the file is written as one ``sites`` row: the kind's
own mapping (``forward:``, ``redirect:`` or ``static:``) becomes the row's ``options``. Like tenants, sites named in
the file are created or replaced and sites not in it are left alone. A file without ``sites:`` changes no site.

    sites:
      - name: blog
        kind: forward
        host: blog.example.com
        deny: [203.0.113.0/24]
        forward: {upstream: "http://10.0.0.5:8080", cache: {ttl: 300}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, update

from desired_state.site_load import row_fields, site_rows_of
from desired_state.site_specs import KINDS, SiteError, build_site
from desired_state.site_tables import Site
from desired_state.yaml_document import Document, display_path, field_path

SITE_KEYS = ("name", "kind", "host", "path", "allow", "deny", *KINDS)
_COLUMNS = ("kind", "host", "path", "allow", "deny", "options")


@dataclass(frozen=True)
class SiteCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def row_from_yaml(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A file's site as the row fields ``build_site`` takes; a kind's mapping under another kind is an error."""
    name, kind = raw.get("name"), raw.get("kind")
    for key in raw:
        if key not in SITE_KEYS:
            raise SiteError(str(name), str(key), raw[key], f"unknown field; expected one of {', '.join(SITE_KEYS)}")
        if key in KINDS and key != kind:
            raise SiteError(str(name), str(key), raw[key], f"is the options of a {key} site; this site is {kind!r}")
    row = {key: raw.get(key) for key in ("name", "kind", "host", "path", "allow", "deny")}
    row["options"] = raw.get(str(kind)) or {}
    return {key: value for key, value in row.items() if value is not None or key in ("name", "kind", "host")}


def check_sites(document: Document) -> tuple[list[dict[str, Any]], list[str]]:
    """The file's sites as rows to write, and the problems (with file positions) that stop the import."""
    raw_sites = document.data.get("sites") if isinstance(document.data, dict) else None
    if raw_sites is None:
        return [], []
    if not isinstance(raw_sites, list):
        return [], [f"{document.where(('sites',))}: sites: must be a list of sites, each starting with '- name: ...'"]
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_sites):
        path = ("sites", str(i))
        if not isinstance(raw, dict):
            problems.append(f"{document.where(path)}: {display_path(path)}: must be a mapping with name, kind, host")
            continue
        try:
            row = row_from_yaml(raw)
            build_site(row)
        except SiteError as exc:
            where = document.where((*path, *field_path(exc.field)))
            problems.append(
                f"{where}: {display_path(path)} (site {exc.site!r}): {exc.field} = {exc.shown}: {exc.message}"
            )
            continue
        name = str(row["name"])
        if name in seen:
            problems.append(
                f"{document.where((*path, 'name'))}: site {name!r} is listed twice (first as sites[{seen[name]}])"
            )
            continue
        seen[name] = i
        rows.append(row)
    return rows, problems


def write_sites(connection: Connection, rows: list[dict[str, Any]], now: datetime) -> SiteCounts:
    stored = {str(r["name"]): r for r in site_rows_of(connection)}
    created = updated = unchanged = 0
    for row in rows:
        values = {key: row.get(key) for key in _COLUMNS}
        before = stored.get(str(row["name"]))
        if before is None:
            connection.execute(
                insert(Site).values(name=row["name"], generation=1, created_at=now, updated_at=now, **values)
            )
            created += 1
        elif {key: before.get(key) for key in _COLUMNS} == values:
            unchanged += 1
        else:
            connection.execute(
                update(Site)
                .where(Site.name == row["name"])
                .values(generation=Site.generation + 1, updated_at=now, **values)
            )
            updated += 1
    return SiteCounts(created, updated, unchanged)


def export_sites(connection: Connection) -> list[dict[str, Any]]:
    """Every site in the file format, values as stored (so an invalid row shows what the UI wrote)."""
    result = []
    for row in site_rows_of(connection):
        fields = row_fields(row)
        options = fields.pop("options", None)
        site = {key: value for key, value in fields.items() if value not in (None, [])}
        if options not in (None, {}):
            site[str(row["kind"])] = options
        result.append(site)
    return result
