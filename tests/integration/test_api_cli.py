"""``reconciler tokens`` and ``reconciler serve`` as real processes over PostgreSQL: an account made on the command
line logs in to the served API, is listed without its token, and is locked out once revoked."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
import yaml

from desired_state.database import upgrade
from tests.integration.harness import REPO_ROOT, wait_until
from tests.integration.runs import free_port, stop

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        env={**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_tokens_made_on_the_command_line_open_the_served_api(postgres_url: str, owner_id: str) -> None:
    upgrade(postgres_url)
    port = free_port()
    env = {"RECONCILER_DATABASE_URL": postgres_url, "RECONCILER_OWNER_ID": owner_id, "RECONCILER_USAGE_INTERVAL": "0"}
    made = _cli(env, "tokens", "create", "anna", "--role", "operator", "--password-stdin", stdin="a long password\n")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("rct_") and "shown this once" in made.stderr
    assert _cli(env, "tokens", "create", "anna", "--role", "viewer").returncode == 1  # names are unique
    listed = _cli(env, "tokens", "list")
    assert "anna" in listed.stdout and "operator" in listed.stdout and token not in listed.stdout

    serve = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "serve", "--listen", f"127.0.0.1:{port}"],
        env={**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        wait_until(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, timeout=60, what="serve")
        me = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert me.status_code == 200 and me.json()["name"] == "anna" and me.json()["has_password"] is True
        assert _cli(env, "tokens", "revoke", "anna").returncode == 0
        assert httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 401
    finally:
        assert stop(serve) == 0


def test_the_deploy_bundles_api_healthcheck_passes_against_a_real_serve_and_fails_without_one(
    postgres_url: str, owner_id: str
) -> None:
    """deploy/compose.yaml's ``api`` service: its healthcheck command, run as Docker would run it in the container
    (with the service's RECONCILER_API_LISTEN), against ``reconciler serve``."""
    upgrade(postgres_url)
    api = yaml.safe_load((REPO_ROOT / "deploy" / "compose.yaml").read_text())["services"]["api"]
    assert api["command"] == ["serve"]
    kind, *probe = api["healthcheck"]["test"]
    assert kind == "CMD"
    listen = f"127.0.0.1:{free_port()}"
    env = {
        "RECONCILER_DATABASE_URL": postgres_url,
        "RECONCILER_OWNER_ID": owner_id,
        "RECONCILER_USAGE_INTERVAL": "0",
        "RECONCILER_API_LISTEN": listen,
        "RECONCILER_API_SESSION_SECRET": "a-real-secret-for-this-test",
    }

    def healthy() -> bool:
        checked = subprocess.run(probe, env={**os.environ, **env}, capture_output=True, timeout=30, check=False)
        return checked.returncode == 0

    assert not healthy()  # nothing listens yet: the check must be able to fail
    serve = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", *api["command"]],
        env={**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(healthy, timeout=60, what="the api service's healthcheck")
    finally:
        assert stop(serve) == 0
    assert not healthy()
