"""WordPress site values (pure): the credentials' value type, the labels and names of a site's Docker objects.

A ``wordpress`` site (docs/sites.md) runs in two containers on a bridge network of its own: PHP-FPM with
WordPress (``erp/wordpress-fpm:local``) and MariaDB (``erp/mariadb:local``), each with a volume at /data
(wp-content; the database). Their labels carry the site's owner under a key of their own, never the tenants'
managed label, so the tenants' snapshot, plan and mass-delete guard never see them. The planner
(``reconciler.planning.wordpress``) builds the desired objects from these names; the driver
(``reconciler.drivers.docker.sites``) observes the objects by these labels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.core.resources import LABEL_PREFIX, Container

LABEL_SITE_OWNER = f"{LABEL_PREFIX}.site-owner"
LABEL_SITE = f"{LABEL_PREFIX}.site"
LABEL_SITE_ROLE = f"{LABEL_PREFIX}.site-role"  # fpm | db
FPM_PORT = 9000
DB_PORT = 3306
ROLES = ("db", "fpm")  # creation order: the database first


@dataclass(frozen=True)
class SiteSecrets:
    """A site's generated credentials (``db_password`` and WordPress's eight keys and salts). Never shown: the
    repr names the site and a digest only."""

    site: str
    values: Mapping[str, str] = field(repr=False)

    @property
    def digest(self) -> str:
        """12 hex digits of a hash over the values: changes when they do, tells nothing about them."""
        encoded = json.dumps(dict(self.values), sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:12]

    @property
    def db_password(self) -> str:
        return self.values["db_password"]

    def __repr__(self) -> str:
        return f"SiteSecrets(site={self.site!r}, digest={self.digest})"


@dataclass(frozen=True)
class WordpressImages:
    fpm: str = "erp/wordpress-fpm:local"
    db: str = "erp/mariadb:local"


@dataclass(frozen=True)
class SiteNames:
    """Names of one site's Docker objects: ``<prefix>-site-<name>-…``."""

    prefix: str
    site: str

    @property
    def base(self) -> str:
        return f"{self.prefix}-site-{self.site}"

    @property
    def network(self) -> str:
        return f"{self.base}-net"

    def container(self, role: str) -> str:
        return f"{self.base}-{role}"

    def volume(self, role: str) -> str:
        return f"{self.base}-{'content' if role == 'fpm' else 'db'}"


@dataclass(frozen=True)
class SiteObjectsSeen:
    """What the engine has of the sites of one owner (observed by their labels)."""

    containers: tuple[Container, ...] = ()
    networks: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()

    def site_of(self, container: Container) -> str:
        return dict(container.labels).get(LABEL_SITE, "")

    def role_of(self, container: Container) -> str:
        return dict(container.labels).get(LABEL_SITE_ROLE, "")
