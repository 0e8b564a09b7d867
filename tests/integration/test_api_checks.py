"""Checks (issue 15) through the HTTP API and the console (issue 14): the latest result of each check and the recent
runs, read from ``tenant_checks`` on PostgreSQL as the check runner writes them; the console shows the latest ones
in both languages; a viewer may read them."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from desired_state.check_results import record_results
from desired_state.yaml_io import import_yaml
from reconciler.core.checks import CheckResult
from tests.integration.api_support import CATALOG, api_server

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _result(check: str, outcome: str, image: str, detail: str, trigger: str = "schedule") -> CheckResult:
    return CheckResult("acme", "a", check, image, outcome, 0.0123, detail, trigger)  # type: ignore[arg-type]


def _console_page(base: str, token: str, locale: str | None = None) -> str:
    with httpx.Client(base_url=base, timeout=60) as browser:
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
        assert csrf is not None
        browser.post("/login", data={"csrf": csrf.group(1), "token": token})
        if locale is not None:
            page = browser.get("/tenants/acme").text
            form = re.search(r'name="csrf" value="([^"]+)"', page)
            assert form is not None
            browser.post("/locale", data={"csrf": form.group(1), "locale": locale, "back": "/tenants/acme"})
        return browser.get("/tenants/acme").text


def test_latest_results_and_history_through_the_api_and_the_console(postgres_url: str, owner_id: str) -> None:
    with api_server(postgres_url, owner_id) as api:
        import_yaml(api.engine, CATALOG + "tenants:\n  - {name: acme, domain: acme.erp.test, services: {a: {}}}\n")
        with api.client("viewer") as http:
            assert http.get("/api/v1/tenants/acme/checks").json() == []
        record_results(api.engine, [_result("home", "passed", "erp/demo-svc:1", "answered 200")], T0)
        record_results(api.engine, [_result("health", "passed", "erp/demo-svc:1", "answered 200")], T0)
        failing = _result("home", "failed", "erp/demo-svc:2", "body does not contain 'version=1'", "upgrade")
        record_results(api.engine, [failing], T0 + timedelta(minutes=1))
        record_results(api.engine, [replace(_result("home", "passed", "other", "x"), tenant="beta")], T0)

        with api.client("viewer") as http:
            latest = http.get("/api/v1/tenants/acme/checks").json()
            history = http.get("/api/v1/tenants/acme/checks/history", params={"limit": 2}).json()
            refused = http.get("/api/v1/tenants/acme/checks/history", params={"limit": 0})
        # One row per check, the newest: home failed on 2, health passed on 1; beta's row is not acme's.
        assert [(c["check"], c["outcome"], c["image"]) for c in latest] == [
            ("health", "passed", "erp/demo-svc:1"),
            ("home", "failed", "erp/demo-svc:2"),
        ]
        assert latest[1]["trigger"] == "upgrade" and latest[1]["at"].startswith("2026-01-01T12:01:00")
        assert latest[1]["latency_seconds"] == pytest.approx(0.0123)
        assert [(c["check"], c["outcome"]) for c in history] == [("home", "failed"), ("health", "passed")]
        assert refused.status_code == 422

        page = _console_page(api.base, api.tokens["viewer"])
        section = re.search(r'<section id="checks">(.*?)</section>', page, re.S)
        assert section is not None and "Checks (latest result of each)" in section.group(1)
        assert re.findall(r'data-check="([^"]+)" data-outcome="([^"]+)"', section.group(1)) == [
            ("a/health", "passed"),
            ("a/home", "failed"),
        ]
        assert "body does not contain &#39;version=1&#39;" in section.group(1)
        persian = _console_page(api.base, api.tokens["viewer"], locale="fa")
        persian_section = re.search(r'<section id="checks">(.*?)</section>', persian, re.S)
        assert persian_section is not None and "ناموفق" in persian_section.group(1)
