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
from reconciler.core.errors import PermanentError
from reconciler.core.render_plan import render_json
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.operations.site_backups import SiteBackups
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
        if reply.status == 200 and needle in reply.body:
            return reply
        raise OSError(f"HTTP {reply.status}: {reply.body[:200]!r}")  # shown if it never answers

    return wait_for(f"{path} answering with {needle!r}", probe)


def _fpm(docker_client: Any, owner: str) -> Any:
    return docker_client.containers.get(f"{owner}-site-blog-fpm")


def _install(wp: SitesRig) -> None:
    """WordPress's own installation, over HTTP through Nginx → FPM → MariaDB."""
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

    _install(wp)
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


def test_a_backup_and_restore_bring_back_a_post_and_an_upload_deleted_after_the_backup(
    wp: SitesRig, docker_client: Any, owner_id: str, tmp_path: Path
) -> None:
    wp.add("blog", "wordpress", HOST, {"title": "Backed up"})
    assert not wp.step.run().errors
    _install(wp)
    hello = _page(wp, "/?p=1", b"Hello world!")  # the post every installation starts with
    assert hello.status == 200
    fpm = _fpm(docker_client, owner_id)
    fpm.exec_run(["sh", "-c", "mkdir -p /data/wp-content/uploads/b && echo one > /data/wp-content/uploads/b/f.txt"])

    backups = SiteBackups(DockerDriver(owner_id), tmp_path, owner_id, owner_id)
    backup = backups.backup("blog")
    assert sorted(p.name for p in backup.path.iterdir()) == ["database.sql", "wp-content.tar.gz"]
    assert all(p.stat().st_mode & 0o077 == 0 for p in backup.path.iterdir())  # owner-only files

    db = docker_client.containers.get(f"{owner_id}-site-blog-db")
    deleted = db.exec_run(["mariadb", "wordpress", "-e", "DELETE FROM wp_posts WHERE ID = 1"])
    assert deleted.exit_code == 0, deleted.output
    fpm.exec_run(["rm", "-r", "/data/wp-content/uploads/b"])
    assert request(wp.port, HOST, "/?p=1").status == 404
    assert request(wp.port, HOST, "/wp-content/uploads/b/f.txt").status == 404

    backups.restore("blog", backup.path)
    _page(wp, "/?p=1", b"Hello world!")
    assert request(wp.port, HOST, "/wp-content/uploads/b/f.txt").body == b"one\n"
    with pytest.raises(PermanentError, match="not a backup of this site"):
        backups.restore("blog", tmp_path)

    # The scheduled job: a new backup, then retention keeps the newest only (of names we generate).
    stray = backups.directory("blog") / "notes"
    stray.mkdir()
    assert backups.backup_sites(["blog"], keep=1) == {}
    kept = sorted(p.name for p in backups.directory("blog").iterdir())
    assert len(kept) == 2 and "notes" in kept and backup.path.name not in kept


def test_a_removed_site_loses_its_containers_with_its_file_and_keeps_its_volumes(
    wp: SitesRig, docker_client: Any, owner_id: str
) -> None:
    wp.add("blog", "wordpress", HOST, {"title": "Short-lived"})
    assert not wp.step.run().errors
    site_label = {"label": [f"tenant-reconciler.site-owner={owner_id}"]}

    def names(kind: str) -> list[str]:
        every = {"all": True} if kind == "containers" else {}
        listed = getattr(docker_client, kind).list(**every, filters=site_label)
        return sorted(item.name for item in listed)

    assert len(names("containers")) == 2
    wp.remove("blog")
    refused = wp.step.run()  # the only site file: the mass-delete guard keeps it, and so its containers
    assert refused.planned.plan.refused and not refused.every_applied
    assert len(names("containers")) == 2

    removed = wp.step.run(allow_mass_delete=True)
    assert {(c.kind, c.action.value) for c in removed.every_applied} == {
        ("site", "-"),
        ("container", "-"),
        ("network", "-"),
    }
    assert names("containers") == [] and names("networks") == []
    assert names("volumes") == [f"{owner_id}-site-blog-content", f"{owner_id}-site-blog-db"]
