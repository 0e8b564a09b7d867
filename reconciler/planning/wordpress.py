"""``plan_wordpress``: desired WordPress sites vs the site objects the engine has → the steps to take (pure).

Called by the WordPress part of the sites stage (``reconciler.runtime.passes.wordpress_step``) before the Nginx
files are planned, because a wordpress site's file names its FPM container's address. Per site: its network, its
two volumes (never removed, not even with the site), then the database and FPM containers: created when missing,
started when stopped, replaced (removed, then created under the same name) when their spec hash changed (image,
limits, credentials). Containers and the network of a site no longer in the database are removed; its volumes
(wp-content, the database) and its credentials are kept. A site whose row is invalid is left as it is.

The plan is a tuple of ``Change`` values like the tenants' (kinds network, volume, container; key
``site:<name>``), so ``reconciler plan`` shows them with the rest and hides the env's values behind a digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping

from desired_state.site_specs import SiteSpec
from reconciler.core.plan import Action, Change
from reconciler.core.resources import LABEL_SPEC_HASH, Container, Network, Volume
from reconciler.core.sites import SITE_KEY
from reconciler.core.wordpress import (
    DB_PORT,
    FPM_PORT,
    LABEL_SITE,
    LABEL_SITE_OWNER,
    LABEL_SITE_ROLE,
    ROLES,
    SiteNames,
    SiteObjectsSeen,
    SiteSecrets,
    WordpressImages,
)

DB_NAME = "wordpress"
DB_USER = "wordpress"


def site_labels(owner: str, site: str, role: str | None = None) -> dict[str, str]:
    labels = {LABEL_SITE_OWNER: owner, LABEL_SITE: site}
    return labels | ({LABEL_SITE_ROLE: role} if role else {})


def _env(role: str, spec: SiteSpec, names: SiteNames, secrets: SiteSecrets) -> tuple[tuple[str, str], ...]:
    assert spec.wordpress is not None
    if role == "db":
        env = {"MARIADB_DATABASE": DB_NAME, "MARIADB_USER": DB_USER, "MARIADB_PASSWORD": secrets.db_password}
    else:
        env = {
            "WP_DB_HOST": names.container("db"),
            "WP_DB_NAME": DB_NAME,
            "WP_DB_USER": DB_USER,
            "WP_DB_PASSWORD": secrets.db_password,
            "WP_SITE_TITLE": spec.wordpress.title,  # the image's mu-plugin keeps the blog's title to it
        }
        env |= {f"WP_{key}": value for key, value in secrets.values.items() if key != "db_password"}
    return tuple(sorted(env.items()))


def site_containers(
    spec: SiteSpec, secrets: SiteSecrets, prefix: str, owner: str, images: WordpressImages
) -> tuple[Container, ...]:
    """The site's desired containers, database first."""
    assert spec.wordpress is not None
    names = SiteNames(prefix, spec.name)
    result = []
    for role in ROLES:
        env = _env(role, spec, names, secrets)
        image = images.db if role == "db" else images.fpm
        hashed = {"image": image, "env": env, "memory": spec.wordpress.memory, "cpus": spec.wordpress.cpus}
        spec_hash = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]
        labels = site_labels(owner, spec.name, role) | {LABEL_SPEC_HASH: spec_hash}
        result.append(
            Container(
                name=names.container(role),
                tenant=f"{SITE_KEY}{spec.name}",
                service=role,
                replica=0,
                image=image,
                spec_hash=spec_hash,
                network=names.network,
                volume=names.volume(role),
                port=DB_PORT if role == "db" else FPM_PORT,
                env=env,
                memory=spec.wordpress.memory,
                cpus=spec.wordpress.cpus,
                labels=tuple(sorted(labels.items())),
                pids_limit=512,
                log_max_size="10m",
                log_max_file=3,
                no_new_privileges=True,
            )
        )
    return tuple(result)


def _site_changes(key: str, wanted: tuple[Container, ...], seen: SiteObjectsSeen) -> list[Change]:
    network = wanted[0].network
    changes: list[Change] = []
    if network not in seen.networks:
        changes.append(Change(Action.CREATE, "network", key, network, "network missing", None, Network(network, key)))
    for container in wanted:
        if container.volume not in seen.volumes:
            volume = Volume(container.volume, key)
            changes.append(Change(Action.CREATE, "volume", key, container.volume, "volume missing", None, volume))
    have = {c.name: c for c in seen.containers}
    for container in wanted:
        before = have.get(container.name)
        if before is None:
            changes.append(
                Change(Action.CREATE, "container", key, container.name, "container missing", None, container)
            )
        elif before.spec_hash != container.spec_hash:
            reason = "image, limits or credentials changed"
            changes.append(
                Change(Action.UPDATE, "container", key, container.name, reason, before, container, "replace")
            )
        elif not before.running:
            reason = f"container {before.state}"
            changes.append(Change(Action.UPDATE, "container", key, container.name, reason, before, container, "start"))
    return changes


def plan_wordpress(
    sites: Mapping[str, SiteSpec],
    invalid: Collection[str],
    secrets: Mapping[str, SiteSecrets],
    seen: SiteObjectsSeen,
    *,
    prefix: str,
    owner: str,
    images: WordpressImages,
) -> tuple[Change, ...]:
    changes: list[Change] = []
    wanted_sites = {name for name, spec in sites.items() if spec.wordpress is not None}
    for name in sorted(wanted_sites):
        wanted = site_containers(sites[name], secrets[name], prefix, owner, images)
        changes += _site_changes(f"{SITE_KEY}{name}", wanted, seen)
    for container in seen.containers:
        site = seen.site_of(container)
        if site in wanted_sites or site in invalid:
            continue
        reason = "site no longer in the database (volumes kept)"
        key = f"{SITE_KEY}{site}"
        changes.append(Change(Action.DELETE, "container", key, container.name, reason, container, None, "delete"))
    for network in sorted(seen.networks):
        site = network.removeprefix(f"{prefix}-site-").removesuffix("-net")
        if site not in wanted_sites and site not in invalid:
            key = f"{SITE_KEY}{site}"
            before = Network(network, key)
            changes.append(Change(Action.DELETE, "network", key, network, "site no longer in the database", before))
    return tuple(changes)
