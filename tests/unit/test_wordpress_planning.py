"""WordPress sites, pure parts: ``plan_wordpress`` (objects missing, stopped, changed; a removed site's containers
go, its volumes stay; an invalid site is left alone), the Nginx file (fastcgi to the FPM address, PHP under
uploads refused, no file without an address) and the credentials' value type (never shown)."""

from __future__ import annotations

from dataclasses import replace

from desired_state.site_load import DesiredSites, sites_from_rows
from desired_state.site_secrets import generate
from reconciler.core.plan import Action, Plan
from reconciler.core.policies import MassDeleteLimits
from reconciler.core.render_plan import render_json, render_text
from reconciler.core.wordpress import SiteObjectsSeen, SiteSecrets, WordpressImages
from reconciler.planning.sites import plan_sites
from reconciler.planning.wordpress import plan_wordpress, site_containers
from renderers.nginx import NginxLayout, render_site

LAYOUT = NginxLayout(prefix="erp", owner="prod")
SECRETS = {"blog": SiteSecrets("blog", generate())}


def _desired(**options: object) -> DesiredSites:
    return sites_from_rows(
        [{"id": 1, "name": "blog", "kind": "wordpress", "host": "blog.example.test", "options": dict(options)}]
    )


def _plan(seen: SiteObjectsSeen, **options: object) -> list[tuple[str, str, str]]:
    desired = _desired(**options)
    changes = plan_wordpress(
        desired.sites, desired.errors.keys(), SECRETS, seen, prefix="erp", owner="prod", images=WordpressImages()
    )
    return [(c.action.value, c.operation, c.name) for c in changes]


def _converged(**options: object) -> SiteObjectsSeen:
    desired = _desired(**options)
    containers = site_containers(desired.sites["blog"], SECRETS["blog"], "erp", "prod", WordpressImages())
    return SiteObjectsSeen(
        containers=containers,
        networks=frozenset({"erp-site-blog-net"}),
        volumes=frozenset({"erp-site-blog-content", "erp-site-blog-db"}),
    )


def test_a_new_site_gets_network_volumes_then_database_and_fpm() -> None:
    assert _plan(SiteObjectsSeen()) == [
        ("+", "create", "erp-site-blog-net"),
        ("+", "create", "erp-site-blog-db"),
        ("+", "create", "erp-site-blog-content"),
        ("+", "create", "erp-site-blog-db"),
        ("+", "create", "erp-site-blog-fpm"),
    ]
    assert _plan(_converged()) == []


def test_stopped_changed_and_removed_sites() -> None:
    seen = _converged()
    stopped = replace(seen, containers=(seen.containers[0], replace(seen.containers[1], state="exited")))
    assert _plan(stopped) == [("~", "start", "erp-site-blog-fpm")]
    assert _plan(seen, memory="512m") == [("~", "replace", "erp-site-blog-db"), ("~", "replace", "erp-site-blog-fpm")]
    assert _plan(seen, title="Other") == [("~", "replace", "erp-site-blog-fpm")]  # the title is FPM's env

    gone = plan_wordpress({}, (), {}, seen, prefix="erp", owner="prod", images=WordpressImages())
    assert [(c.action, c.kind) for c in gone] == [
        (Action.DELETE, "container"),
        (Action.DELETE, "container"),
        (Action.DELETE, "network"),
    ]  # volumes never
    assert plan_wordpress({}, ("blog",), {}, seen, prefix="erp", owner="prod", images=WordpressImages()) == ()


def test_the_plan_shows_a_digest_of_the_credentials_never_their_values() -> None:
    desired = _desired()
    changes = plan_wordpress(
        desired.sites, (), SECRETS, SiteObjectsSeen(), prefix="erp", owner="prod", images=WordpressImages()
    )
    plan = Plan.of(changes)
    shown = render_json(plan) + render_text(plan) + repr(SECRETS["blog"])
    for value in SECRETS["blog"].values.values():
        assert value not in shown
    assert SECRETS["blog"].digest in repr(SECRETS["blog"])


def test_the_nginx_file_passes_everything_to_fpm_and_waits_for_an_address() -> None:
    spec = _desired().sites["blog"]
    text = render_site(spec, LAYOUT, "172.18.0.3:9000").text
    assert text.count("fastcgi_pass 172.18.0.3:9000;") == 2
    assert "fastcgi_param SCRIPT_FILENAME /usr/share/wordpress$fastcgi_script_name;" in text
    assert "location ~* ^/wp-content/uploads/.*\\.php$ {\n        return 403;" in text

    planned = plan_sites(_desired(), {}, LAYOUT, MassDeleteLimits(), fpm={})
    assert not planned.plan.changes
    assert [b.reason for b in planned.plan.blocked] == ["FpmNotRunning"]
    ready = plan_sites(_desired(), {}, LAYOUT, MassDeleteLimits(), fpm={"blog": "172.18.0.3:9000"})
    assert [c.action for c in ready.plan.changes] == [Action.CREATE]
