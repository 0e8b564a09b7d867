"""Condition history on PostgreSQL: each condition that appears or changes status gets a ``condition_transitions``
row in the pass's own status transaction (one insert per pass, no extra read), bounded per tenant; listed by the
API (newest first, by type) and on the console's tenant page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event

from desired_state import condition_history
from desired_state.model import Condition, TenantStatus
from desired_state.status import write_statuses
from desired_state.yaml_io import import_yaml
from tests.integration.api_support import CATALOG, api_server

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _status(tenant: str, ready: str, reason: str, message: str = "", valid: str = "True") -> TenantStatus:
    conditions = (Condition("Ready", ready, reason, message), Condition("Valid", valid, "SpecValid"))  # type: ignore[arg-type]
    return TenantStatus(tenant=tenant, phase="Ready" if ready == "True" else "Degraded", conditions=conditions)


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    return seen


def test_transitions_are_recorded_once_per_change_in_one_insert_per_pass_and_bounded(
    postgres_url: str, owner_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with api_server(postgres_url, owner_id) as api:
        import_yaml(api.engine, CATALOG + "tenants:\n  - {name: acme, domain: acme.erp.test, services: {a: {}}}\n")
        statements = _statements(api.engine)

        # First pass: both conditions of both tenants appear.
        write_statuses(
            api.engine, [_status("acme", "True", "AllReady", "1/1"), _status("beta", "True", "AllReady")], now=T0
        )
        history = [s for s in statements if "condition_transitions" in s]
        assert len([s for s in history if s.startswith("INSERT")]) == 1
        assert not any(s.startswith("SELECT") for s in history)  # no read of the history beyond the status rows'
        assert len(condition_history.read_transitions(api.engine, "acme")) == 2

        # Same statuses (a new message only): no transition, no statement on the history at all.
        statements.clear()
        write_statuses(
            api.engine,
            [_status("acme", "True", "AllReady", "2/2"), _status("beta", "True", "AllReady")],
            now=T0 + timedelta(minutes=1),
        )
        assert not [s for s in statements if "condition_transitions" in s]
        assert len(condition_history.read_transitions(api.engine, "acme")) == 2

        # Ready flips, with a long message: one row, message shortened, at the pass's time.
        long_message = "x" * 2000
        write_statuses(
            api.engine, [_status("acme", "False", "ContainerUnhealthy", long_message)], now=T0 + timedelta(minutes=2)
        )
        newest = condition_history.read_transitions(api.engine, "acme")[0]
        assert (newest.type, newest.status, newest.reason) == ("Ready", "False", "ContainerUnhealthy")
        assert len(newest.message) == condition_history.MAX_MESSAGE and newest.message.endswith("…")
        assert newest.at == T0 + timedelta(minutes=2)

        # Flapping is bounded per tenant; the other tenant's history is untouched.
        monkeypatch.setattr(condition_history, "KEEP_PER_TENANT", 4)
        for i in range(6):
            ready = "True" if i % 2 == 0 else "False"
            write_statuses(api.engine, [_status("acme", ready, f"Flap{i}")], now=T0 + timedelta(minutes=3 + i))
        kept = condition_history.read_transitions(api.engine, "acme")
        assert [t.reason for t in kept] == ["Flap5", "Flap4", "Flap3", "Flap2"]
        assert len(condition_history.read_transitions(api.engine, "beta")) == 2

        with api.client("viewer") as http:
            listed = http.get("/api/v1/tenants/acme/conditions/history").json()
            only_valid = http.get("/api/v1/tenants/beta/conditions/history", params={"type": "Valid"}).json()
            limited = http.get("/api/v1/tenants/acme/conditions/history", params={"limit": 1}).json()
        assert [t["reason"] for t in listed] == ["Flap5", "Flap4", "Flap3", "Flap2"]
        assert listed[0]["status"] == "False" and listed[0]["at"].startswith("2026-01-01T12:08:00")
        assert [(t["type"], t["status"]) for t in only_valid] == [("Valid", "True")]
        assert len(limited) == 1

        with httpx.Client(base_url=api.base, timeout=60) as browser:
            csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
            assert csrf is not None
            browser.post("/login", data={"csrf": csrf.group(1), "token": api.tokens["viewer"]})
            page = browser.get("/tenants/acme").text
        section = re.search(r'<section id="condition-history">(.*?)</section>', page, re.S)
        assert section is not None and "Condition history" in section.group(1)
        assert section.group(1).count("<tr data-type=") == 4 and "Flap5" in section.group(1)
