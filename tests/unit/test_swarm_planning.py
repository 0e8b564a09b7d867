"""Planning for the Swarm engine (pure): placement of a tenant's data node, services as plan values, their diff."""

from __future__ import annotations

from dataclasses import replace

from desired_state.model import DesiredState
from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.plan import Action
from reconciler.core.render_plan import render_text
from reconciler.core.resources import Network, Snapshot, Volume
from reconciler.core.services import Node, Service
from reconciler.planning import Observed, PassContext, PlanSettings, plan_pass
from reconciler.planning.placement import SwarmSettings
from renderers.containers import Naming
from renderers.services import registry_image

NAMING = Naming(prefix="erp", owner="unit")
CATALOG = parse_catalog({"a": {"image": "erp/demo-svc:1", "memory": "64M"}, "b": {"image": "erp/demo-svc:1"}})
SWARM = SwarmSettings(registry="reg:5000", stateless=frozenset({"a"}))
SETTINGS = PlanSettings(naming=NAMING, swarm=SWARM)
GIB = 1024**3
CPUS = 2.0
NODES = (
    Node("n1", "i1", memory=1 * GIB, cpus=CPUS),
    Node("n2", "i2", memory=4 * GIB, cpus=CPUS),
    Node("n3", "i3", memory=2 * GIB),
)


def desired(*names: str, replicas: int = 2) -> DesiredState:
    tenants = {
        n: build_tenant(
            {
                "name": n,
                "domain": f"{n}.erp.test",
                "state": "running",
                "services": {"a": {"replicas": replicas}, "b": {}},
            },
            CATALOG,
        )
        for n in names
    }
    return DesiredState(catalog=CATALOG, tenants=tenants, errors={}, uids={})


def plan(state: DesiredState, snapshot: Snapshot, placements: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return plan_pass(state, Observed(snapshot=snapshot), SETTINGS, PassContext(placements=placements or {}))


def converged(state: DesiredState, placements: dict[str, str]) -> Snapshot:
    """What the Swarm driver would report once the plan was applied."""
    first = plan(state, Snapshot(nodes=NODES), placements)
    services = tuple(replace(c.after, id=f"id-{c.name}", version=1) for c in first.plan.of_kind("service"))
    networks = tuple(Network(f"erp-{t}", t, subnet="10.213.0.0/26") for t in state.tenants)
    volumes = tuple(Volume(f"erp-{t}-data", t, node=placements[t]) for t in state.tenants)
    return Snapshot(services=services, networks=networks, volumes=volumes, nodes=NODES)  # type: ignore[arg-type]


def test_the_data_node_is_the_one_with_most_free_memory_and_is_recorded_once() -> None:
    result = plan(desired("acme", "beta"), Snapshot(nodes=NODES))
    # n2 has the most memory; acme's reservation counts before beta is placed, which still fits n2 best.
    assert dict(result.placements) == {"acme": "n2", "beta": "n2"}
    services = {c.name: c.after for c in result.plan.of_kind("service")}
    a, b = services["erp-acme-a"], services["erp-acme-b"]
    assert isinstance(a, Service) and isinstance(b, Service)
    assert (a.replicas, a.node, a.volume) == (2, None, None)  # stateless: spreads, mounts nothing
    assert (b.replicas, b.node, b.volume) == (1, "n2", "erp-acme-data")
    assert a.image == "reg:5000/erp/demo-svc:1" and dict(a.env)["ERP_REPLICA"] == "{{.Task.Slot}}"
    # A stored placement wins over a better node, and is not recorded again.
    again = plan(desired("acme"), Snapshot(nodes=NODES), {"acme": "n3"})
    assert again.placements == ()
    assert {c.after.node for c in again.plan.of_kind("service") if isinstance(c.after, Service)} == {None, "n3"}


def test_a_converged_swarm_plans_nothing_and_hand_edits_are_put_back() -> None:
    state = desired("acme")
    snapshot = converged(state, {"acme": "n2"})
    assert plan(state, snapshot, {"acme": "n2"}).plan.empty
    edited = tuple(
        replace(s, replicas=5, image="reg:5000/erp/demo-svc:2") if s.name == "erp-acme-a" else s
        for s in snapshot.services
    )
    gone = tuple(s for s in edited if s.name != "erp-acme-b")
    changes = plan(state, replace(snapshot, services=gone), {"acme": "n2"}).plan.changes
    assert [(c.action, c.name) for c in changes] == [(Action.UPDATE, "erp-acme-a"), (Action.CREATE, "erp-acme-b")]
    assert "replicas 5 -> 2" in changes[0].reason and "image reg:5000/erp/demo-svc:2" in changes[0].reason
    assert changes[0].after.id == "id-erp-acme-a"  # type: ignore[union-attr]  # the update names the observed one
    assert "+ service erp-acme-b" in render_text(plan(state, replace(snapshot, services=gone), {"acme": "n2"}).plan)


def test_a_drained_data_node_is_reported_and_the_data_stays() -> None:
    state = desired("acme")
    snapshot = converged(state, {"acme": "n2"})
    drained = tuple(replace(n, availability="drain") if n.name == "n2" else n for n in NODES)
    result = plan(state, replace(snapshot, nodes=drained), {"acme": "n2"})
    assert result.plan.empty  # no implicit move
    (block,) = result.plan.blocked
    assert (block.tenant, block.kind, block.reason) == ("acme", "service", "NodeDrained")


def test_no_node_with_the_memory_holds_the_tenant_back() -> None:
    small = (Node("n1", "i1", memory=16 * 1024**2),)
    result = plan(desired("acme"), Snapshot(nodes=small))
    assert result.plan.for_tenant("acme").changes == () and "no usable node" in result.failed["acme"]


def test_a_removed_tenant_loses_its_services_not_its_volume() -> None:
    snapshot = converged(desired("acme"), {"acme": "n2"})
    changes = plan(DesiredState(catalog=CATALOG, tenants={}, errors={}, uids={}), snapshot).plan.changes
    assert {(c.action, c.kind) for c in changes} == {(Action.DELETE, "service"), (Action.DELETE, "network")}


def test_registry_prefix_leaves_images_that_name_a_registry() -> None:
    assert registry_image("erp/demo-svc:1", "reg:5000") == "reg:5000/erp/demo-svc:1"
    assert registry_image("other.example/x:1", "reg:5000") == "other.example/x:1"
    assert registry_image("erp/demo-svc:1", None) == "erp/demo-svc:1"


def test_cpu_reservations_count_too() -> None:
    # b reserves 0.5 CPU per tenant (the catalog default); a node with 0.4 CPUs left cannot hold another tenant.
    nodes = (Node("n1", "i1", memory=8 * GIB, cpus=0.9), Node("n2", "i2", memory=1 * GIB, cpus=2.0))
    result = plan(desired("acme", "beta"), Snapshot(nodes=nodes))
    assert dict(result.placements) == {"acme": "n1", "beta": "n2"}
