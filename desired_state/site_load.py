"""Load the desired sites: ``sites`` rows → validated ``SiteSpec`` values, one ``SiteError`` per bad row.

First step of the sites stage of a pass (``reconciler.runtime.passes.sites_step``), and what ``reconciler plan``
shows. One query. Each row is validated on its own (``desired_state.site_specs``): any exception while one row is
decoded becomes that site's error and the others load normally. Hosts are then checked across sites: Nginx
serves one server block per host, so when two sites claim one host the newer row (higher id) gets the error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Text, cast, select

from desired_state.load import decode_json_column
from desired_state.site_specs import SiteError, SiteSpec, build_site
from desired_state.site_tables import Site
from desired_state.specs import shorten


@dataclass(frozen=True)
class DesiredSites:
    sites: dict[str, SiteSpec] = field(default_factory=dict)
    errors: dict[str, SiteError] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self.sites) | frozenset(self.errors)


_COLUMNS = (
    Site.id,
    Site.name,
    Site.kind,
    Site.host,
    Site.path,
    # As text, so one malformed JSON value (possible on SQLite) is that site's error, not the query's.
    cast(Site.allow, Text).label("allow"),
    cast(Site.deny, Text).label("deny"),
    cast(Site.options, Text).label("options"),
    Site.generation,
)


def site_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every row as stored, JSON columns decoded where they decode (else left as text), sorted by name."""
    with engine.connect() as connection:
        return site_rows_of(connection)


def site_rows_of(connection: Connection) -> list[dict[str, Any]]:
    """``site_rows`` inside a caller's transaction (the YAML import and export)."""
    rows = connection.execute(select(*_COLUMNS).order_by(Site.name)).mappings().all()
    result = []
    for row in rows:
        item = dict(row)
        for key in ("allow", "deny", "options"):
            with contextlib.suppress(ValueError):  # left as text: validation reports it on the site
                item[key] = decode_json_column(item[key])
        result.append(item)
    return result


def row_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    fields = {key: row.get(key) for key in ("name", "kind", "host", "path", "allow", "deny", "options")}
    return {key: value for key, value in fields.items() if value is not None or key in ("name", "kind", "host")}


def load_sites(engine: Engine) -> DesiredSites:
    return sites_from_rows(site_rows(engine))


def sites_from_rows(rows: list[dict[str, Any]]) -> DesiredSites:
    """Validate rows (as ``site_rows`` returns them): the pure half of ``load_sites``."""
    desired = DesiredSites()
    claimed: dict[str, tuple[int, str]] = {}
    for row in sorted(rows, key=lambda r: int(r.get("id") or 0)):
        name = str(row.get("name"))
        desired.generations[name] = int(row.get("generation") or 1)
        try:
            spec = build_site(row_fields(row))
        except SiteError as exc:
            desired.errors[name] = exc
            continue
        except Exception as exc:  # one row, however broken, never stops the others
            desired.errors[name] = SiteError(name, "row", shorten(str(exc)), "could not be read")
            continue
        first = claimed.get(spec.host)
        if first is not None:
            message = f"already served by site {first[1]!r}; one site per host"
            desired.errors[name] = SiteError(name, "host", spec.host, message)
            continue
        claimed[spec.host] = (int(row.get("id") or 0), name)
        desired.sites[name] = spec
    return desired
