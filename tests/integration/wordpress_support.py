"""Support for the WordPress sites tests: the images (built once per session by deploy/images/build-wordpress.sh),
the sites rig with a WordPress step wired to a real Docker driver, HTTP calls through our Nginx (polling while
MariaDB and PHP-FPM start) and removal of the test's site objects (containers, networks, volumes by label)."""

from __future__ import annotations

import http.client
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.wordpress import LABEL_SITE_OWNER
from tests.integration.sites_support import Reply

REPO_ROOT = Path(__file__).resolve().parents[2]


def build_wordpress_images() -> None:
    script = REPO_ROOT / "deploy" / "images" / "build-wordpress.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        pytest.fail(f"{script} failed ({result.returncode}):\n{result.stdout}{result.stderr}", pytrace=False)


def remove_site_objects(client: Any, owner: str) -> None:
    """Containers, then networks, then volumes labelled as sites of ``owner``. Only those."""
    if not owner:
        raise ValueError("refusing to clean up without an owner id")
    label = {"label": [f"{LABEL_SITE_OWNER}={owner}"]}
    for container in client.containers.list(all=True, filters=label):
        container.remove(force=True)
    for network in client.networks.list(filters=label):
        network.remove()
    for volume in client.volumes.list(filters=label):
        volume.remove(force=True)


def request(port: int, host: str, path: str, *, form: dict[str, str] | None = None, cookie: str | None = None) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Host": host, "Connection": "close"}
        if cookie:
            headers["Cookie"] = cookie
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request("POST" if form is not None else "GET", path, body=body, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def wait_for(what: str, probe: Callable[[], Reply | None], timeout: float = 240.0) -> Reply:
    """Poll ``probe`` (once a second) until it returns a reply; fail naming ``what`` and the last error it raised."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            reply = probe()
        except OSError as exc:
            reply, last = None, exc
        if reply is not None:
            return reply
        time.sleep(1.0)
    pytest.fail(f"{what}: not within {timeout:g}s (last: {last!r})", pytrace=False)
