"""Issue 10 acceptance: a desired state that would take the whole fleet down is refused on every layer.

Four tenants serve through the session's Traefik and PowerDNS (``tests.integration.fleet``). Each of four SQL
changes a web UI could make by mistake (every tenant deleted, every service deleted, every tenant set absent,
every service scaled to 0) is refused by ``reconciler apply`` with one error naming the counts, and by a running
``reconciler run`` (a real subprocess, short resync) round after round: every site keeps answering through
Traefik and in DNS, every container keeps running, the tenants' status rows say MassDeleteRefused, and the
mass-delete alert reaches a local Bot API endpoint once per incident. Between the cases the fleet's desired state
is imported again, so one converged fleet serves all four.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from desired_state.status import read_status
from tests.integration.fleet import (
    SECRET,
    TENANTS,
    assert_serving,
    converge_fleet,
    fleet_yaml,
    layered_harness,
    route_file,
)
from tests.integration.harness import Harness, wait_until
from tests.integration.runs import BotApi, bot_api, free_port, metric

pytestmark = pytest.mark.integration

TOKEN = "424242:mass-delete-layers-token"
PASSES = "reconciler_passes_total"
SWEEPS = "reconciler_pass_duration_seconds_count"  # scope="all": the sweeps of reconciler run
ALL_LAYERS = "6 of 6 containers, 4 of 4 route files, 4 of 4 routers, 4 of 4 DNS rrsets"
# Services gone or scaled to 0: the tenants still run (no containers, nothing to route), so their records stay.
NO_DNS = "6 of 6 containers, 4 of 4 route files, 4 of 4 routers, more than"

# (case, SQL as a web UI would run it, the counts the error must name)
MISTAKES = (
    ("tenants deleted", "DELETE FROM tenants", ALL_LAYERS),
    (
        "services deleted",
        "DELETE FROM tenant_services; UPDATE tenants SET generation = generation + 1",
        NO_DNS,
    ),
    ("tenants absent", "UPDATE tenants SET state = 'absent', generation = generation + 1", ALL_LAYERS),
    (
        "replicas 0",
        "UPDATE tenant_services SET replicas = 0; UPDATE tenants SET generation = generation + 1",
        NO_DNS,
    ),
)


@pytest.fixture
def fleet(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, traefik: Any, powerdns: Any
) -> Iterator[Harness]:
    with layered_harness(owner_id, postgres_url, docker_client, traefik, powerdns) as h:
        yield h


def run_sql(h: Harness, statements: str) -> None:
    for statement in statements.split(";"):
        h.execute_sql(statement.strip())


def world(h: Harness, traefik: Any) -> tuple[set[str], dict[str, str]]:
    """Running container ids and the route files' text: what a refused plan must leave as it was."""
    files = {t: route_file(h, traefik, t).read_text() for t in TENANTS}
    return {c.id for c in h.running()}, files


def uids(h: Harness) -> dict[str, str]:
    with h.rt.engine.connect() as connection:
        rows = connection.execute(text("SELECT name, uid FROM tenants WHERE uid IS NOT NULL")).all()
    return {str(name): str(uid) for name, uid in rows}


def reimport(h: Harness, identities: dict[str, str]) -> None:
    """Undo the UI's mistake like a restore of the rows would: the same tenants, with their uids (a re-created row
    without its uid is a new tenant, held away from the old tenant's data: see test_identity.py)."""
    h.import_yaml(fleet_yaml(h))
    for name, uid in identities.items():
        h.execute_sql("UPDATE tenants SET uid = :uid WHERE name = :name", uid=uid, name=name)


def restore(h: Harness, traefik: Any, powerdns: Any, identities: dict[str, str]) -> None:
    reimport(h, identities)
    result = h.apply()
    assert result.ok, (result.errors, result.plan.errors)
    assert result.plan.empty, result.plan
    assert_serving(traefik, powerdns, h, "after the desired state was restored")


def test_apply_refuses_each_mass_delete_on_every_layer(fleet: Harness, traefik: Any, powerdns: Any) -> None:
    h = fleet
    converge_fleet(traefik, powerdns, h)
    before = world(h, traefik)
    assert len(before[0]) == 6
    identities = uids(h)
    for case, sql, counts in MISTAKES:
        run_sql(h, sql)
        out = h.cli("apply")
        assert out.returncode == 1, (case, out.stdout, out.stderr)
        refused = [line for line in out.stderr.splitlines() if line.startswith("refused: ")]
        assert len(refused) == 1, (case, out.stderr)
        assert f"mass delete refused: the desired state would remove {counts}" in refused[0], (case, refused)
        assert "Applied 0 changes" in out.stdout, (case, out.stdout)
        assert SECRET not in out.stdout + out.stderr, case
        assert world(h, traefik) == before, case
        assert_serving(traefik, powerdns, h, case)
        restore(h, traefik, powerdns, identities)
    assert world(h, traefik) == before


def test_run_refuses_each_mass_delete_round_after_round_and_alerts_once(
    fleet: Harness, traefik: Any, powerdns: Any, tmp_path: Path
) -> None:
    h = fleet
    converge_fleet(traefik, powerdns, h)
    before = world(h, traefik)
    identities = uids(h)
    port = free_port()
    with bot_api(TOKEN) as api:
        h.env.update(
            {
                "RECONCILER_RESYNC_INTERVAL": "1",
                "RECONCILER_METRICS_ADDR": f"127.0.0.1:{port}",
                "RECONCILER_TELEGRAM_TOKEN": TOKEN,
                "RECONCILER_TELEGRAM_CHAT_ID": "1",
                "RECONCILER_TELEGRAM_BASE_URL": api.base_url,
            }
        )
        log = tmp_path / "run.log"
        h.start_run(log_path=log)
        wait_until(lambda: api.texts("active reconciler"), timeout=20, what="the leader alert")
        for number, (case, sql, counts) in enumerate(MISTAKES, start=1):
            run_sql(h, sql)
            wait_until(partial(alerted, api, number), timeout=20, what=f"the mass-delete alert ({case})")
            refused = metric(port, PASSES, result="refused")
            time.sleep(4)  # a few more resync rounds (1 s apart), each refusing again
            assert metric(port, PASSES, result="refused") >= refused + 2, case
            alerts = api.texts("mass delete refused")
            assert len(alerts) == number, (case, alerts)
            assert counts in alerts[-1], (case, alerts[-1])
            assert world(h, traefik) == before, case
            assert_serving(traefik, powerdns, h, case)
            for tenant in TENANTS:
                status = read_status(h.rt.engine, tenant)
                assert status is not None, (case, tenant)
                removal = status.condition("Removal")
                assert removal is not None, (case, tenant, status)
                assert (removal.status, removal.reason) == ("False", "MassDeleteRefused"), (case, tenant, removal)
                assert counts in removal.message, (case, tenant, removal.message)
            # The UI's mistake is undone: the fleet converges again and the next incident alerts anew.
            reimport(h, identities)
            wait_until(lambda: all_ready(h), timeout=30, what=f"every tenant Ready again after {case}")
            # One more sweep, of the restored state, puts the alert back to ok (so the next incident is new).
            sweeps = metric(port, SWEEPS, scope="all")
            wait_until(partial(swept, port, sweeps), timeout=10, what=f"a sweep after the restore ({case})")
        assert h.stop_run() == 0
        assert world(h, traefik) == before
        assert len(api.texts("mass delete refused")) == len(MISTAKES)
    assert TOKEN not in log.read_text() and SECRET not in log.read_text()


def alerted(api: BotApi, times: int) -> bool:
    return len(api.texts("mass delete refused")) >= times


def swept(port: int, since: float) -> bool:
    return metric(port, SWEEPS, scope="all") > since


def all_ready(h: Harness) -> bool:
    for tenant in TENANTS:
        status = read_status(h.rt.engine, tenant)
        if status is None or status.phase != "Ready" or status.condition("Removal") is not None:
            return False
    return True
