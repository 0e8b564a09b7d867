"""The executor carries out a tenant's plan phase by phase, the actions of one phase together
(``runtime.passes.executor``, ``passes.parallel``), against a recording fake engine (``recording_engine``).

The plans are the real planner's (``planning.plan_pass``). What must hold whatever order concurrent actions finish
in: no container before its network and volume; routing once every new container is ready, old + new before new
only; no old half removed before that; a failed new half removed and its old one kept; an upgrade all replicas or
none; a stop mid-phase lets the actions in flight finish and starts no other; outcomes in plan order; and the
number of engine actions in flight never above the bound.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from desired_state.model import DesiredState
from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.errors import TransientError
from reconciler.core.plan import Action, Change, Plan
from reconciler.core.resources import Network, Snapshot
from reconciler.planning import Observed, PlanSettings, RoutingSettings, plan_pass
from reconciler.runtime.passes.deadline import PassDeadline
from reconciler.runtime.passes.executor import Executor, Interrupted, TenantOutcome
from reconciler.runtime.passes.parallel import ActionSlots, run_all
from renderers.containers import Naming, render_tenant
from tests.unit.recording_engine import RecordingEngine, RecordingGate, RecordingRouter

NAMING = Naming(prefix="erp", owner="unit")
CATALOG = {
    "a": {"image": "erp/demo-svc:1", "port": 8080, "health": "/health", "memory": "32M", "cpus": 0.25, "public": True},
    "b": {"image": "erp/demo-svc:1", "port": 8080, "memory": "32M", "cpus": 0.25},
}


def _desired(services: dict[str, Any], image: str = "erp/demo-svc:1", tenant: str = "acme") -> DesiredState:
    catalog = parse_catalog({name: {**raw, "image": image} for name, raw in CATALOG.items()})
    spec = build_tenant({"name": tenant, "domain": f"{tenant}.erp.test", "services": services}, catalog)
    return DesiredState(catalog=catalog, tenants={spec.name: spec}, errors={})


def _plan(desired: DesiredState, engine: RecordingEngine) -> Plan:
    settings = PlanSettings(naming=NAMING, routing=RoutingSettings())
    return plan_pass(desired, Observed(snapshot=engine.observe(), routes={}), settings).plan


def _seed(engine: RecordingEngine, desired: DesiredState) -> None:
    """The tenant as a previous pass left it: network, volume and every container running."""
    for spec in desired.tenants.values():
        rendered = render_tenant(spec, NAMING)
        assert rendered.network is not None and rendered.volume is not None
        engine.networks[rendered.network.name] = Network(rendered.network.name, spec.name, subnet="10.9.0.0/26")
        engine.volumes[rendered.volume.name] = rendered.volume
        engine.seed_running(rendered.containers)


def _executor(engine: RecordingEngine, *, limit: int = 8, gate: RecordingGate | None = None, **kw: Any) -> Executor:
    return Executor(
        docker=engine,
        naming=NAMING,
        router=RecordingRouter(engine),
        slots=ActionSlots(limit),
        probe=engine.probe,
        upgrades=gate,
        **kw,
    )


def _apply(executor: Executor, plan: Plan, desired: DesiredState, before: Snapshot) -> TenantOutcome:
    return executor.apply_tenant("acme", plan, desired.tenants["acme"], before.for_tenant("acme"))


def test_converge_runs_one_phase_together_after_network_and_volume_and_routes_once() -> None:
    engine = RecordingEngine(seed=1, together={"run": 4, "network|volume": 2})
    desired = _desired({"a": {"replicas": 3}, "b": {}})
    plan = _plan(desired, engine)
    outcome = _apply(_executor(engine), plan, desired, engine.observe())

    runs = engine.timeline("run")
    setup = engine.timeline("network", "volume")
    assert len(runs) == 4 and len(setup) == 2
    assert max(e.end for e in setup) <= min(e.start for e in runs), "a container started before its network"
    assert engine.reached == {"run", "network|volume"}, "the actions of one phase ran one after the other"
    publishes = engine.timeline("publish")
    assert len(publishes) == 1 and publishes[0].start >= max(e.end for e in runs)
    assert set(publishes[0].detail) == {e.name for e in runs}
    # Outcomes in plan order: network and volume, the containers as planned, then the route.
    kinds = [c.kind for c in outcome.applied]
    assert kinds == ["network", "volume", "container", "container", "container", "container", "route"]
    planned = [c for c in plan.for_tenant("acme").changes if c.kind == "container"]
    assert [c for c in outcome.applied if c.kind == "container"] == planned


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_outcomes_and_routing_do_not_depend_on_completion_order(seed: int) -> None:
    reference = RecordingEngine(seed=0, pause=0.0)
    desired = _desired({"a": {"replicas": 4}, "b": {}})
    plan = _plan(desired, reference)
    expected = _apply(_executor(reference), plan, desired, reference.observe()).applied

    engine = RecordingEngine(seed=seed, pause=0.05)
    assert _apply(_executor(engine), plan, desired, engine.observe()).applied == expected
    assert engine.published == reference.published


def test_engine_actions_in_flight_never_exceed_the_bound() -> None:
    engine = RecordingEngine(seed=5, pause=0.05, together={"run": 2})
    desired = _desired({"a": {"replicas": 6}, "b": {}})
    executor = _executor(engine, limit=2)
    _apply(executor, _plan(desired, engine), desired, engine.observe())
    assert "run" in engine.reached and engine.peak == 2 and executor.slots.peak == 2
    assert len(engine.timeline("run")) == 7


def test_the_bound_is_shared_by_tenants_applied_at_once() -> None:
    engine = RecordingEngine(seed=6, pause=0.04, together={"run": 3})
    executor = _executor(engine, limit=3)
    tenants = {name: _desired({"a": {"replicas": 3}}, tenant=name) for name in ("t1", "t2", "t3")}
    plans = {name: _plan(desired, engine) for name, desired in tenants.items()}
    steps = [
        (lambda n=n: executor.apply_tenant(n, plans[n], tenants[n].tenants[n], Snapshot())) for n in sorted(tenants)
    ]
    results = run_all(steps, executor.stop)
    assert all(r.error is None for r in results)
    assert "run" in engine.reached, "three tenants of three containers each never had three actions in flight"
    assert engine.peak == 3


def test_replacement_routes_old_and_new_then_new_only_before_any_old_half_goes() -> None:
    engine = RecordingEngine(seed=7, pause=0.03)
    _seed(engine, _desired({"a": {"replicas": 3}}))
    engine.together = {"run": 3, "remove": 3}
    old = {c.name for c in engine.containers.values()}
    desired = _desired({"a": {"replicas": 3}}, image="erp/demo-svc:2")
    plan = _plan(desired, engine)
    assert sum(c.action is Action.REPLACE for c in plan.changes) == 3
    outcome = _apply(_executor(engine), plan, desired, engine.observe())

    new = {e.name for e in engine.timeline("run")}
    assert len(new) == 3 and not new & old
    assert [set(p) for p in engine.published] == [old | new, new]
    second = engine.timeline("publish")[1]
    removals = engine.timeline("remove")
    assert {e.name for e in removals} == old
    assert min(e.start for e in removals) >= second.end, "an old half went before routing had only the new ones"
    assert engine.reached == {"run", "remove"}, "the actions of one phase ran one after the other"
    assert set(engine.containers) == new
    assert [c.kind for c in outcome.applied] == ["container"] * 3 + ["route"]


def test_a_failed_new_half_is_removed_and_its_old_one_keeps_serving() -> None:
    engine = RecordingEngine(seed=8, unhealthy={("a", 1)})
    _seed(engine, _desired({"a": {"replicas": 3}}))
    old = {c.replica: c.name for c in engine.containers.values()}
    desired = _desired({"a": {"replicas": 3}}, image="erp/demo-svc:2")
    with pytest.raises(TransientError, match="not ready"):
        _apply(_executor(engine, ready_timeout=0.4), _plan(desired, engine), desired, engine.observe())

    by_replica = {c.replica: c for c in engine.containers.values()}
    assert by_replica[1].name == old[1], "the old replica 1 must keep serving"
    assert by_replica[0].name != old[0] and by_replica[2].name != old[2]
    assert old[1] in engine.published[-1] and old[1] not in {e.name for e in engine.timeline("remove")}


@pytest.mark.parametrize(
    ("unhealthy", "exits"),
    [({("a", 0)}, set()), (set(), {("a", 2)}), ({("a", 2)}, {("a", 0)}), ({("a", 0), ("a", 1)}, set())],
    ids=["first-unhealthy", "last-exits", "one-each", "two-unhealthy"],
)
def test_an_upgrade_is_all_replicas_or_none(unhealthy: set[tuple[str, int]], exits: set[tuple[str, int]]) -> None:
    engine = RecordingEngine(seed=9, unhealthy=unhealthy, exits=exits)
    _seed(engine, _desired({"a": {"replicas": 3}, "b": {}}))
    engine.exits = exits  # the seeded old containers run; only new ones exit
    before = dict(engine.containers)
    gate = RecordingGate()
    desired = _desired({"a": {"replicas": 3}, "b": {}}, image="erp/demo-svc:2")
    with pytest.raises(TransientError):
        _apply(_executor(engine, gate=gate, ready_timeout=0.4), _plan(desired, engine), desired, engine.observe())

    a_now = {n for n, c in engine.containers.items() if c.service == "a"}
    assert a_now == {n for n, c in before.items() if c.service == "a"}, "a failed upgrade left a new replica of a"
    assert all("demo-svc:1" in engine.containers[n].image for n in a_now)
    assert not any(
        set(p) - set(before) - {n for n, c in engine.containers.items() if c.service == "b"} for p in engine.published
    )
    assert len(gate.results) == 1 and gate.results[0]["a"] is not None and gate.results[0]["b"] is None


def test_a_stop_mid_phase_lets_actions_in_flight_finish_and_starts_no_other() -> None:
    stop = threading.Event()
    engine = RecordingEngine(seed=10, pause=0.1)
    engine.on_action = lambda what, name: stop.set() if what == "run" else None
    desired = _desired({"a": {"replicas": 6}})
    executor = _executor(engine, limit=2, stop=stop)
    with pytest.raises(Interrupted):
        _apply(executor, _plan(desired, engine), desired, engine.observe())
    runs = engine.timeline("run")
    assert 1 <= len(runs) <= 2, f"{len(runs)} creates started after the stop"
    assert set(engine.containers) == {e.name for e in runs}, "an action in flight did not finish"
    assert engine.published == [] and engine.timeline("remove") == []


def test_same_name_replacement_removes_the_old_container_first() -> None:
    engine = RecordingEngine(seed=11)
    desired = _desired({"a": {}})
    _seed(engine, desired)
    (current,) = engine.containers.values()
    change = Change(
        Action.REPLACE,
        "container",
        "acme",
        current.name,
        "network detached",
        before=current,
        after=current,
        operation="replace",
    )
    _apply(_executor(engine), Plan(changes=(change,)), desired, engine.observe())
    assert [e.what for e in engine.timeline("remove", "run")] == ["remove", "run"]
    assert engine.containers[current.name].running


def test_run_all_keeps_task_order_and_carries_the_pass_deadline() -> None:
    deadline = PassDeadline()
    deadline.begin(-1.0)  # this thread's pass is already past its deadline
    seen = run_all([lambda i=i: (i, deadline.is_set()) for i in range(5)], deadline)
    deadline.end()
    assert [r.value for r in seen] == [(i, True) for i in range(5)]
    assert [r.value for r in run_all([lambda: deadline.is_set()] * 2, deadline)] == [False, False]


def test_a_stop_while_waiting_for_readiness_leaves_the_new_containers_for_the_next_pass() -> None:
    stop = threading.Event()
    engine = RecordingEngine(seed=12, unhealthy={("a", 0), ("a", 1)})
    _seed(engine, _desired({"a": {"replicas": 2}}))
    old = set(engine.containers)
    desired = _desired({"a": {"replicas": 2}}, image="erp/demo-svc:2")
    executor = _executor(engine, stop=stop, ready_timeout=30.0)
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    with pytest.raises(Interrupted):
        _apply(executor, _plan(desired, engine), desired, engine.observe())
    timer.cancel()
    assert len(engine.timeline("run")) == 2
    assert engine.published == [] and engine.timeline("remove") == []
    assert old < set(engine.containers), "the old containers must keep serving, the new wait to be resumed"
