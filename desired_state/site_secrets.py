"""Credentials of WordPress sites: generated once (``secrets``), kept in ``site_secrets``, handed to the containers.

Called by the WordPress part of the sites stage (``reconciler.runtime.passes.wordpress_step``) before it plans the
site's containers. A site's secrets are made the first time the site is seen and never change after, so the
MariaDB volume and the WordPress cookies stay valid across passes, restarts and container replacements. Two
reconcilers racing to create them: the insert does nothing on conflict and both read back the stored value.

``SiteSecrets`` (``reconciler.core.wordpress``) never shows its values: its repr names the site and a digest,
and the plan shows only that digest.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from desired_state.site_tables import SiteSecretRow
from reconciler.core.wordpress import SiteSecrets

WORDPRESS_KEYS = (
    "AUTH_KEY",
    "SECURE_AUTH_KEY",
    "LOGGED_IN_KEY",
    "NONCE_KEY",
    "AUTH_SALT",
    "SECURE_AUTH_SALT",
    "LOGGED_IN_SALT",
    "NONCE_SALT",
)


def generate() -> dict[str, str]:
    values = {"db_password": secrets.token_urlsafe(24)}
    values |= {key: secrets.token_urlsafe(48) for key in WORDPRESS_KEYS}
    return values


def _read(engine: Engine, names: set[str]) -> dict[str, SiteSecrets]:
    with engine.connect() as connection:
        query = select(SiteSecretRow.site, SiteSecretRow.secrets).where(SiteSecretRow.site.in_(sorted(names)))
        return {site: SiteSecrets(site, dict(values)) for site, values in connection.execute(query).all()}


def ensure_site_secrets(engine: Engine, names: Iterable[str]) -> dict[str, SiteSecrets]:
    """The stored secrets of each site in ``names``, generating (and storing) those that have none yet."""
    wanted = set(names)
    if not wanted:
        return {}
    found = _read(engine, wanted)
    missing = sorted(wanted - set(found))
    if not missing:
        return found
    with engine.begin() as connection:
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        for name in missing:
            values = {"site": name, "secrets": generate(), "created_at": datetime.now(UTC)}
            connection.execute(insert(SiteSecretRow).values(values).on_conflict_do_nothing())
    return _read(engine, wanted)


def read_site_secrets(engine: Engine, names: Iterable[str]) -> dict[str, SiteSecrets]:
    """The stored secrets of those sites in ``names`` that have some (reads only: ``reconciler plan``)."""
    wanted = set(names)
    return _read(engine, wanted) if wanted else {}
