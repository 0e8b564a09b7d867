"""WordPress sites against real components: Debian's Nginx (driver-started), PHP-FPM + WordPress and MariaDB in
the images deploy/images/build-wordpress.sh makes from Debian packages, PostgreSQL for the rows (issue 16).

From a ``sites`` row: containers, network and volumes are created, the Nginx file does fastcgi to the FPM
container; WordPress's installation completes over HTTP and the front page shows the row's title; a file in
wp-content/uploads survives a replacement of the FPM container (limits and title changed); a removed FPM container
comes back; the generated credentials appear in no plan, status or log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from desired_state.site_status import read_site_statuses
from desired_state.site_tables import SiteSecretRow
from reconciler.core.render_plan import render_json
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.passes.wordpress_step import WordpressStep
from tests.integration.sites_support import Reply, SitesRig, sites_rig
from tests.integration.wordpress_support import build_wordpress_images, remove_site_objects, request, wait_for

HOST = "blog.example.test"


@pytest.fixture(scope="session")
def wordpress_images(docker_client: Any) -> None:
    build_wordpress_images()


@pytest.fixture
def wp(postgres_url: str, owner_id: str, docker_client: Any, wordpress_images: None) -> Iterator[SitesRig]:
    remove_site_objects(docker_client, owner_id)
    for rig in sites_rig(postgres_url, owner_id):
        rig.step.wordpress = WordpressStep(rig.engine, DockerDriver(owner_id), owner_id, owner_id)
        try:
            yield rig
        finally:
            remove_site_objects(docker_client, owner_id)


def _page(wp: SitesRig, path: str, needle: bytes) -> Reply:
    def probe() -> Reply | None:
        reply = request(wp.port, HOST, path)
        return reply if reply.status == 200 and needle in reply.body else None

    return wait_for(f"{path} answering with {needle!r}", probe)


def _fpm(docker_client: Any, owner: str) -> Any:
    return docker_client.containers.get(f"{owner}-site-blog-fpm")


def test_a_wordpress_site_installs_over_http_and_keeps_its_uploads(
    wp: SitesRig, docker_client: Any, owner_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reconciler")
    wp.add("blog", "wordpress", HOST, {"title": "Company News", "memory": "256m", "cpus": 1})

    planned = wp.step.compute()
    shown = render_json(planned.shown)
    outcome = wp.step.run()
    assert outcome.wordpress is not None and not outcome.errors, outcome.errors
    kinds = sorted((c.kind, c.name) for c in outcome.wordpress.applied)
    assert kinds == sorted(
        [
            ("network", f"{owner_id}-site-blog-net"),
            ("volume", f"{owner_id}-site-blog-content"),
            ("volume", f"{owner_id}-site-blog-db"),
            ("container", f"{owner_id}-site-blog-db"),
            ("container", f"{owner_id}-site-blog-fpm"),
        ]
    )
    assert [c.name for c in outcome.applied] == [f"{owner_id}-site-blog.conf"]
    conf = (Path(wp.layout.sites_dir) / f"{owner_id}-site-blog.conf").read_text()
    assert "fastcgi_pass 172." in conf or "fastcgi_pass 10." in conf or "fastcgi_pass 192.168." in conf

    # WordPress's own installation, over HTTP through Nginx → FPM → MariaDB.
    _page(wp, "/wp-admin/install.php", b"Welcome")
    installed = request(
        wp.port,
        HOST,
        "/wp-admin/install.php?step=2",
        form={
            "weblog_title": "Installer title",
            "user_name": "admin",
            "admin_password": "correct-horse-battery-9",
            "admin_password2": "correct-horse-battery-9",
            "pw_weak": "1",
            "admin_email": "admin@example.test",
            "blog_public": "0",
            "language": "",
        },
    )
    assert installed.status == 200 and b"Success!" in installed.body, installed.body[-2000:]
    front = _page(wp, "/", b"Company News")  # the row's title, not the one typed into the form
    assert b"<html" in front.body
    css = request(wp.port, HOST, "/wp-includes/css/dashicons.min.css")  # core static file, via the router
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    login = request(wp.port, HOST, "/wp-login.php")
    assert login.status == 200 and b"user_login" in login.body

    # An upload (put into wp-content/uploads through the container) ...
    fpm = _fpm(docker_client, owner_id)
    uploads = "/data/wp-content/uploads/2026"
    fpm.exec_run(["sh", "-c", f"mkdir -p {uploads} && echo kept > {uploads}/a.txt && chown -R www-data {uploads}"])
    assert request(wp.port, HOST, "/wp-content/uploads/2026/a.txt").body == b"kept\n"
    evil = request(wp.port, HOST, "/wp-content/uploads/2026/x.php")
    assert evil.status == 403  # PHP under uploads is never run

    # ... survives the FPM container's replacement (limits and title changed).
    wp.change("blog", options={"title": "Company News Two", "memory": "320m", "cpus": 0.5})
    replaced = wp.step.run()
    assert replaced.wordpress is not None and not replaced.errors, replaced.errors
    assert {(c.operation, c.name) for c in replaced.wordpress.applied} == {
        ("replace", f"{owner_id}-site-blog-db"),
        ("replace", f"{owner_id}-site-blog-fpm"),
    }
    new_fpm = _fpm(docker_client, owner_id)
    assert new_fpm.id != fpm.id
    assert new_fpm.attrs["HostConfig"]["Memory"] == 320 * 1024**2
    _page(wp, "/", b"Company News Two")  # same database: installed, only the title moved
    assert request(wp.port, HOST, "/wp-content/uploads/2026/a.txt").body == b"kept\n"

    # A removed FPM container comes back; a converged site costs nothing.
    new_fpm.remove(force=True)
    healed = wp.step.run()
    assert healed.wordpress is not None
    assert [(c.action.value, c.name) for c in healed.wordpress.applied] == [("+", f"{owner_id}-site-blog-fpm")]
    _page(wp, "/", b"Company News Two")
    quiet = wp.step.run()
    assert quiet.wordpress is not None and not quiet.wordpress.applied and not quiet.applied

    # The credentials are in the database only: not in the plan, statuses or logs.
    with wp.engine.connect() as connection:
        stored = connection.execute(select(SiteSecretRow.secrets)).scalar_one()
    statuses = json.dumps([repr(s) for s in read_site_statuses(wp.engine)])
    assert "Ready" in statuses
    for value in stored.values():
        assert value not in shown and value not in statuses and value not in caplog.text
    assert '"digest"' in shown and "WP_DB_PASSWORD" in shown  # keys and a digest, as for tenants' env
