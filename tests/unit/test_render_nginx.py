"""The Nginx renderer against golden files (``tests/golden/nginx/<case>.conf``), one per kind and option set.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 python -m pytest tests/unit/test_render_nginx.py`` and
review the diff: the files are what Nginx will run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from desired_state.site_specs import build_site
from reconciler.core.sites import SiteFile
from renderers.nginx import NginxLayout, render_main, render_site

GOLDEN = Path(__file__).parent.parent / "golden" / "nginx"
LAYOUT = NginxLayout(
    listen="127.0.0.1:8088", prefix="erp", owner="prod", state_dir="/var/lib/r/nginx", static_root="/srv/sites"
)

CASES: dict[str, dict[str, Any]] = {
    "forward-plain": {"kind": "forward", "host": "api.example.test", "options": {"upstream": "http://10.0.0.5:8080"}},
    "forward-cache-path": {
        "kind": "forward",
        "host": "blog.example.test",
        "path": "/news",
        "allow": ["10.0.0.0/8"],
        "deny": ["10.9.0.0/16", "127.0.0.2"],
        "options": {
            "upstream": "https://origin.example.test/wp",
            "host_header": "upstream",
            "connect_timeout": 2,
            "read_timeout": 30,
            "cache": {
                "size": "1g",
                "ttl": 600,
                "statuses": [200, 404],
                "bypass_cookies": ["session", "wordpress_logged_in_"],
            },
        },
    },
    "redirect-keep-path": {
        "kind": "redirect",
        "host": "old.example.test",
        "options": {"target": "https://new.example.test/", "code": 308, "keep_path": True},
    },
    "static-docs": {
        "kind": "static",
        "host": "docs.example.test",
        "path": "/docs",
        "options": {"volume": "docs", "max_age": 86400},
    },
}


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.mark.parametrize("case", sorted(CASES))
def test_site_files_match_their_golden_files(case: str) -> None:
    site = render_site(build_site({"name": case, **CASES[case]}), LAYOUT)
    assert site.file == f"erp-site-{case}.conf"
    _check(f"{case}.conf", site.text)
    # The driver's reading of the file is the renderer's: ours, unedited.
    observed = SiteFile.from_text(case, site.file, site.text)
    assert observed == site and observed.owner == "prod" and not observed.edited


def test_main_file_matches_its_golden_file() -> None:
    _check("main.conf", render_main(LAYOUT))
    assert "include /tmp/x/*.conf;" in render_main(LAYOUT, "/tmp/x")


def test_a_hand_edit_is_seen_in_the_digest() -> None:
    site = render_site(build_site({"name": "a1", **CASES["forward-plain"]}), LAYOUT)
    edited = SiteFile.from_text("a1", site.file, site.text.replace("8080", "8081"))
    assert edited.owner == "prod" and edited.edited
    headless = SiteFile.from_text("a1", site.file, site.body)
    assert headless.owner is None and headless.edited
