"""A router (Traefik) re-created by hand loses the tenant overlays (issue 13): the diff plans joining it again."""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.diff import diff
from reconciler.core.plan import Action
from reconciler.core.resources import DesiredTenant, Network, Snapshot


def test_a_router_that_lost_a_tenant_network_is_planned_to_join_it_again() -> None:
    want = Network("erp-acme", "acme", "10.213.0.0/24")
    desired = {"acme": DesiredTenant(tenant="acme", network=want, volume=None, containers=())}
    memo: dict[str, tuple[object, ...]] = {}
    for router in (True, None):  # attached, or no router (the Docker engine): nothing to do
        observed = Snapshot(networks=(replace(want, id="n1", router=router),))
        assert diff(desired, observed, services=True, converged=memo).changes == ()
    # Re-created by hand: the converged memo does not hide it, and the change names why.
    lost = Snapshot(networks=(replace(want, id="n1", router=False),))
    [change] = diff(desired, lost, services=True, converged=memo).changes
    assert (change.action, change.kind, change.name) == (Action.UPDATE, "network", "erp-acme")
    assert change.reason == "router not attached (re-created?)"
