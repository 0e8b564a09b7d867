"""The console over HTTP (no browser): password and token login, CSRF on every form, tenant list and filter, create,
preview before save, a viewer refused, Persian right to left. Real PostgreSQL and Docker; the browser test is
``test_console_e2e.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from desired_state.access import create_token, list_audit
from desired_state.tenant_edits import read_tenant
from desired_state.yaml_io import import_yaml
from tests.integration.api_support import CATALOG, PASSWORD, Api, api_server
from tests.integration.api_support import console_login as _login
from tests.integration.api_support import csrf_of as _csrf

pytestmark = pytest.mark.integration


@pytest.fixture
def api(postgres_url: str, owner_id: str, docker_client: Any) -> Iterator[Api]:
    with api_server(postgres_url, owner_id) as served:
        import_yaml(served.engine, CATALOG)
        create_token(served.engine, "olga", "operator", password=PASSWORD)
        create_token(served.engine, "vera", "viewer", password=PASSWORD, locale="fa")
        yield served


def test_login_needs_the_right_password_and_a_form_from_this_console(api: Api) -> None:
    with httpx.Client(base_url=api.base, timeout=60) as browser:
        assert browser.get("/tenants").headers["location"] == "/login"
        token = _csrf(browser.get("/login"))
        assert browser.post("/login", data={"csrf": token, "name": "olga", "password": "wrong one!"}).status_code == 401
        assert browser.post("/login", data={"csrf": "forged", "name": "olga", "password": PASSWORD}).status_code == 403
        by_token = browser.post("/login", data={"csrf": token, "token": api.tokens["viewer"]})
        assert by_token.status_code == 303
        assert "viewer" in browser.get("/tenants").text


def test_create_preview_then_save_with_csrf(api: Api) -> None:
    with _login(api, "olga") as browser:
        listing = browser.get("/tenants")
        assert 'id="capacity"' in listing.text and "GiB in use" in listing.text
        csrf = _csrf(listing)
        forged = browser.post(
            "/tenants", data={"csrf": "x", "name": "acme", "domain": "acme.erp.test", "services": "a"}
        )
        assert forged.status_code == 403
        created = browser.post(
            "/tenants", data={"csrf": csrf, "name": "acme", "domain": "acme.erp.test", "services": "a", "replicas": "1"}
        )
        assert created.status_code == 303 and created.headers["location"] == "/tenants/acme"
        page = browser.get("/tenants/acme")
        assert page.status_code == 200 and 'id="pending-plan"' in page.text and "+ container" in page.text

        preview = browser.post(
            "/tenants/acme/edit", data={"csrf": csrf, "generation": "1", "replicas-a": "2", "do": "preview"}
        )
        assert preview.status_code == 200 and 'id="preview"' in preview.text and 'id="save-button"' in preview.text
        with api.engine.connect() as connection:
            assert read_tenant(connection, "acme").generation == 1  # type: ignore[union-attr]
        saved = browser.post(
            "/tenants/acme/edit", data={"csrf": csrf, "generation": "1", "replicas-a": "2", "do": "save"}
        )
        assert saved.status_code == 303
        with api.engine.connect() as connection:
            stored = read_tenant(connection, "acme")
        assert stored is not None and stored.generation == 2 and stored.document["services"]["a"]["replicas"] == 2

        stale = browser.post(
            "/tenants/acme/edit", data={"csrf": csrf, "generation": "1", "replicas-a": "3", "do": "save"}
        )
        assert stale.status_code == 422 and "generation 2, not 1" in stale.text
        bad = browser.post(
            "/tenants/acme/edit", data={"csrf": csrf, "generation": "2", "replicas-a": "-1", "do": "preview"}
        )
        assert bad.status_code == 422 and "services.a.replicas = -1" in bad.text

        # Allow and deny lists: a CIDR with host bits set is refused with the network it probably meant.
        cidr = {"csrf": csrf, "generation": "2", "allow-a": "10.0.0.1/8", "deny-a": "", "do": "preview"}
        refused = browser.post("/tenants/acme/edit", data=cidr)
        assert refused.status_code == 422 and "services.a.route.allow" in refused.text and "10.0.0.0/8" in refused.text
        cidr.update({"allow-a": "10.0.0.0/8", "deny-a": "10.9.0.0/16", "do": "save"})
        assert browser.post("/tenants/acme/edit", data=cidr).status_code == 303
        with api.engine.connect() as connection:
            routed = read_tenant(connection, "acme")
        assert routed is not None and routed.document["services"]["a"]["route"] == {
            "allow": ["10.0.0.0/8"],
            "deny": ["10.9.0.0/16"],
        }

        asked = browser.post("/tenants/acme/action", data={"csrf": csrf, "do": "backup"})
        assert asked.status_code == 303
        assert 'data-kind="backup" data-status="pending"' in browser.get("/tenants/acme").text
        filtered = browser.get("/tenants", params={"q": "zzz"})
        assert 'data-tenant="acme"' not in filtered.text
    actions = [e.action for e in reversed(list_audit(api.engine, "tenant:acme"))]
    assert actions == ["tenant.create", "tenant.edit", "tenant.edit", "request.backup"]


def test_a_viewer_reads_in_persian_and_cannot_change_anything(api: Api) -> None:
    with _login(api, "olga") as operator:
        csrf = _csrf(operator.get("/tenants"))
        operator.post("/tenants", data={"csrf": csrf, "name": "acme", "domain": "acme.erp.test", "services": "a"})
    with _login(api, "vera") as viewer:
        page = viewer.get("/tenants/acme")
        assert page.status_code == 200
        assert 'dir="rtl"' in page.text and 'lang="fa"' in page.text and "برنامهٔ در انتظار" in page.text
        assert 'id="save-button"' not in page.text and 'id="backup-now"' not in page.text
        csrf = _csrf(page)
        for path, data in (
            ("/tenants/acme/edit", {"replicas-a": "3", "do": "save", "generation": "1"}),
            ("/tenants/acme/action", {"do": "stop"}),
            ("/tenants", {"name": "evil", "domain": "evil.erp.test", "services": "a"}),
        ):
            assert viewer.post(path, data={"csrf": csrf, **data}).status_code == 403
        # The API refuses a write with the console's cookie too (the cookie is for reads only).
        assert viewer.patch("/api/v1/tenants/acme", json={"state": "stopped"}).status_code == 401
    with api.engine.connect() as connection:
        stored = read_tenant(connection, "acme")
    assert stored is not None and stored.generation == 1 and stored.document["state"] == "running"
    assert [e.actor for e in list_audit(api.engine)] == ["olga"]
