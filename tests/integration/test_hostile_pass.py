"""Hostile rows against a whole pass (issue 11): random nonsense written straight into every desired-state column
of one tenant, then a real reconcile pass against Docker and PostgreSQL. The pass completes, no exception
escapes, the other tenants stay converged (same containers, nothing planned for them), and the hostile tenant's
secret env value appears in no status row, no log line and no plan output (text or JSON).

The hostile values come from ``test_hostile_rows`` (the load-level property test); here fewer examples, since
each one runs a pass on the real engine.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from desired_state.status import read_statuses
from reconciler.core.render_plan import render_json, render_text
from tests.integration.harness import Harness
from tests.integration.test_hostile_rows import GOOD, _erase, _write, hostile_tenant


def _ids(h: Harness, tenant: str) -> set[str]:
    return {c.id for c in h.containers(tenant)}


@pytest.fixture
def converged(harness: Harness) -> Harness:
    harness.import_yaml(GOOD)
    result = harness.apply()
    assert result.ok, result.errors
    assert harness.rt.reconciler.compute().plan.empty
    return harness


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_pass_over_hostile_rows_keeps_everyone_else_and_every_secret(
    converged: Harness, data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    h = converged
    engine = h.rt.engine
    rows: dict[str, Any] = data.draw(hostile_tenant(engine.dialect.name == "postgresql"))
    before = {t: _ids(h, t) for t in ("acme", "globex")}
    try:
        name = _write(engine, rows)
    except DBAPIError:
        assume(False)  # a value the column types refuse: the UI could not have written it either
    caplog.clear()
    try:
        with caplog.at_level(logging.DEBUG):
            inputs = h.rt.reconciler.compute()
            shown = render_text(inputs.plan) + render_json(inputs.plan)
            result = h.apply(allow_mass_delete=False)
        statuses = read_statuses(engine)
        # The other tenants: nothing planned, nothing touched.
        assert not [c for c in inputs.plan.changes if c.tenant in ("acme", "globex")]
        assert {t: _ids(h, t) for t in ("acme", "globex")} == before
        assert "acme" not in result.errors and "globex" not in result.errors
        secret = rows["secret"]
        assert secret not in shown
        assert all(secret not in repr(s) for s in statuses)
        assert secret not in caplog.text
        assert name in {s.tenant for s in statuses}
    finally:
        _erase(engine)
        # Whatever the hostile tenant got (a valid draw converges), it goes again, explicitly.
        h.apply(allow_mass_delete=True)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM tenant_statuses WHERE tenant LIKE 'hostile-%'"))
