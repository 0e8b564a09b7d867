"""What the canary tests (test_canary, test_canary_checks, test_canary_latency) share: the tenant's domain, the
weighted split Traefik serves for it, and the demo images rebuilt when another checkout replaced them."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx

from tests.integration.harness import REPO_ROOT, Harness


def domain(h: Harness) -> str:
    return f"acme.{h.owner}.erp.test"


def traefik_members(traefik: Any, h: Harness) -> dict[str, float]:
    """The weighted split Traefik serves for the tenant's service ``a`` (member → weight)."""
    services = httpx.get(f"{traefik.api_url}/api/http/services", params={"per_page": 1000}, timeout=5).json()
    weighted = next(s for s in services if s["name"] == f"{h.owner}-acme.a@file")
    return {m["name"].split(".")[-1].split("@")[0]: m.get("weight", 1) for m in weighted["weighted"]["services"]}


def rebuild_demo_images() -> None:
    """The demo images again (a no-op when current): on a shared machine another checkout's build.sh may have
    rebuilt them since the session began from an erp-serve without the knobs these tests use."""
    build = subprocess.run(["bash", str(REPO_ROOT / "deploy/images/build.sh")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
