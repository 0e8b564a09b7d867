"""Sites through the real entry points: ``reconciler plan`` shows site changes, ``apply`` carries them out
(starting our Nginx), and ``reconciler run`` heals a deleted site file on its resync sweep."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.devstack import free_port
from reconciler.drivers.nginx import NginxDriver
from tests.integration.harness import Harness, wait_until
from tests.integration.sites_support import get

SITES = """\
sites:
  - name: moved
    kind: redirect
    host: moved.example.test
    redirect: {target: "https://new.example.test/", code: 302}
"""


@pytest.fixture
def site_harness(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str) -> Iterator[Harness]:
    root = Path(tempfile.mkdtemp(prefix="sites-cli-"))
    root.chmod(0o755)
    port = free_port()
    h = Harness.create(
        owner_id, postgres_url, docker_client, nginx_state_dir=str(root / "nginx"), nginx_listen=f"127.0.0.1:{port}"
    )
    h.env["TEST_NGINX_PORT"] = str(port)
    try:
        yield h
    finally:
        h.stop_run()
        NginxDriver(root / "nginx", owner_id).stop()
        h.rt.engine.dispose()
        shutil.rmtree(root, ignore_errors=True)


def test_plan_apply_and_run_reconcile_sites(site_harness: Harness) -> None:
    h = site_harness
    port = int(h.env["TEST_NGINX_PORT"])
    h.import_yaml(SITES)
    planned = h.cli("plan")
    assert planned.returncode == 2, planned.stderr
    assert f"site moved:\n    + site {h.owner}-site-moved.conf" in planned.stdout

    applied = h.cli("apply")
    assert applied.returncode == 0, applied.stderr
    assert f"+ site {h.owner}-site-moved.conf  # site file missing" in applied.stdout
    reply = get(port, "moved.example.test")
    assert (reply.status, reply.headers["location"]) == (302, "https://new.example.test/")
    assert h.cli("plan").returncode == 0

    h.start_run()
    site_file = Path(h.env["RECONCILER_NGINX_STATE_DIR"]) / "sites" / f"{h.owner}-site-moved.conf"
    site_file.unlink()
    wait_until(site_file.exists, timeout=60, what="the sweep rewrites the deleted site file")
    wait_until(lambda: get(port, "moved.example.test").status == 302, timeout=30, what="the site serves again")
