"""Unit tests for the small pure pieces around the diff: subnets, policies, plan ordering, work queue."""

from __future__ import annotations

import ipaddress
import threading
import time

import pytest

from reconciler.core.plan import Action, Change, Part, Plan
from reconciler.core.policies import MassDeleteLimits, mass_delete_guard
from reconciler.core.resources import Container, Network
from reconciler.core.routes import RouteFile, RouteTable
from reconciler.core.subnets import SubnetPoolExhausted, allocate_subnet
from reconciler.runtime.service.workqueue import ALL, Backoff, WorkQueue


def _container(tenant: str, service: str, replica: int) -> Container:
    return Container(
        name=f"erp-{tenant}-{service}-{replica}-x",
        tenant=tenant,
        service=service,
        replica=replica,
        image="erp/demo-svc:1",
        spec_hash="x",
        network=f"erp-{tenant}",
        volume=f"erp-{tenant}-data",
        port=8080,
    )


def _delete(tenant: str, service: str, replica: int) -> Change:
    c = _container(tenant, service, replica)
    return Change(Action.DELETE, "container", tenant, c.name, "tenant absent", before=c, operation="delete")


class TestSubnets:
    def test_stable_for_the_same_tenant_and_world(self) -> None:
        first = allocate_subnet("acme", "10.213.0.0/16", 26, [])
        assert first == allocate_subnet("acme", "10.213.0.0/16", 26, [])
        assert ipaddress.ip_network(first).prefixlen == 26
        assert ipaddress.ip_network(first).subnet_of(ipaddress.ip_network("10.213.0.0/16"))  # type: ignore[arg-type]

    def test_never_overlaps_a_subnet_in_use(self) -> None:
        taken = allocate_subnet("acme", "10.213.0.0/16", 26, [])
        other = allocate_subnet("acme", "10.213.0.0/16", 26, [taken, "172.17.0.0/16"])
        assert other != taken
        assert not ipaddress.ip_network(other).overlaps(ipaddress.ip_network(taken))

    def test_a_larger_foreign_network_blocks_its_whole_range(self) -> None:
        chosen = allocate_subnet("acme", "10.213.0.0/24", 26, ["10.213.0.0/25"])
        assert ipaddress.ip_network(chosen) in {
            ipaddress.ip_network("10.213.0.128/26"),
            ipaddress.ip_network("10.213.0.192/26"),
        }

    def test_exhausted_pool_is_a_clear_error(self) -> None:
        with pytest.raises(SubnetPoolExhausted, match=r"no free /26 left in subnet pool 10\.213\.0\.0/25"):
            allocate_subnet("acme", "10.213.0.0/25", 26, ["10.213.0.0/26", "10.213.0.64/26"])


def _owned(containers: int, files: int = 0, routers: int = 0, rrsets: int = 0) -> dict[str, int]:
    return {"containers": containers, "route files": files, "routers": routers, "DNS rrsets": rrsets}


def _route_delete(tenant: str) -> Change:
    router = Part(Action.DELETE, "router", f"erp-{tenant}.a")
    file = RouteFile(tenant, f"erp-{tenant}.yml", RouteTable(), owner="t")
    return Change(Action.DELETE, "route", tenant, file.name, "gone", before=file, parts=(router,), operation="delete")


class TestMassDeleteGuard:
    """The guard judges what a plan removes on every layer, whatever the cause (tests first: issue 10)."""

    def test_empty_table_refuses_the_whole_plan(self) -> None:
        plan = Plan.of([_delete(t, "a", r) for t in ("acme", "globex") for r in range(3)])
        guarded = mass_delete_guard(plan, _owned(6), MassDeleteLimits(), allow=False)
        assert guarded.changes == ()
        assert len(guarded.refused) == 6
        assert "6 of 6 containers" in guarded.errors[0] and "--allow-mass-delete" in guarded.errors[0]

    def test_one_small_tenant_of_many_is_fine(self) -> None:
        plan = Plan.of([_delete("acme", "a", 0), _delete("acme", "a", 1)])
        assert mass_delete_guard(plan, _owned(6), MassDeleteLimits(), allow=False) == plan

    def test_absent_or_scaled_to_zero_counts_like_a_vanished_tenant(self) -> None:
        # The cause does not matter: six removals of six owned containers are refused.
        plan = Plan.of([_delete("acme", "a", r) for r in range(6)])
        assert mass_delete_guard(plan, _owned(6), MassDeleteLimits(), allow=False).errors

    def test_removing_everything_is_refused_even_when_small(self) -> None:
        plan = Plan.of([_delete("acme", "a", 0), _delete("acme", "a", 1)])
        guarded = mass_delete_guard(plan, _owned(2), MassDeleteLimits(), allow=False)
        assert guarded.changes == () and guarded.errors

    def test_allow_flag_lets_it_through(self) -> None:
        plan = Plan.of([_delete("acme", "a", r) for r in range(6)])
        assert mass_delete_guard(plan, _owned(6), MassDeleteLimits(), allow=True) == plan

    def test_a_full_pass_is_refused_whole_creations_included(self) -> None:
        create = Change(Action.CREATE, "network", "new", "erp-new", "network missing", after=Network("erp-new", "new"))
        plan = Plan.of([create, *[_delete("acme", "a", r) for r in range(5)]])
        guarded = mass_delete_guard(plan, _owned(5), MassDeleteLimits(), allow=False)
        assert guarded.changes == ()
        assert create in [r.change for r in guarded.refused]

    def test_route_files_are_counted_on_their_own_layer(self) -> None:
        plan = Plan.of([_route_delete(t) for t in ("acme", "globex", "initech", "umbrella")])
        guarded = mass_delete_guard(plan, _owned(8, files=4, routers=4), MassDeleteLimits(), allow=False)
        assert guarded.changes == ()
        assert "4 of 4 route files" in guarded.errors[0] and "4 of 4 routers" in guarded.errors[0]

    def test_a_scoped_pass_refuses_only_its_tenants_that_remove_something(self) -> None:
        heal = Change(Action.CREATE, "network", "new", "erp-new", "network missing", after=Network("erp-new", "new"))
        plan = Plan.of([heal, *[_delete(t, "a", r) for t in ("acme", "globex") for r in range(3)]])
        # The fleet would lose 6 of 6: the scoped tenant that removes is refused, the one that heals goes on.
        scoped = mass_delete_guard(plan, _owned(6), MassDeleteLimits(), allow=False, scope=frozenset({"acme"}))
        assert scoped.changes == () and {r.change.tenant for r in scoped.refused} == {"acme"} and scoped.errors
        healing = mass_delete_guard(plan, _owned(6), MassDeleteLimits(), allow=False, scope=frozenset({"new"}))
        assert healing.changes == (heal,) and not healing.errors

    def test_removals_within_the_window_share_one_budget(self) -> None:
        plan = Plan.of([_delete("globex", "a", 0), _delete("globex", "a", 1)])
        # Alone it is fine (2 of 6); after 3 removed a moment ago it makes 5 of 9 ... > 50% and > 3: refused.
        assert mass_delete_guard(plan, _owned(6), MassDeleteLimits(), allow=False) == plan
        guarded = mass_delete_guard(plan, _owned(6), MassDeleteLimits(), allow=False, recently={"containers": 3})
        assert guarded.errors and "5 of 9 containers" in guarded.errors[0]


def test_plan_orders_creation_before_removal_and_highest_replica_first() -> None:
    net = Change(Action.CREATE, "network", "acme", "erp-acme", "missing", after=Network("erp-acme", "acme"))
    plan = Plan.of([_delete("acme", "a", 1), _delete("acme", "a", 3), net, _delete("acme", "a", 2)])
    assert [c.name for c in plan.changes] == ["erp-acme", "erp-acme-a-3-x", "erp-acme-a-2-x", "erp-acme-a-1-x"]


class TestWorkQueue:
    def test_a_key_queued_many_times_is_handed_out_once(self) -> None:
        queue = WorkQueue()
        for _ in range(1000):
            queue.add("acme")
        assert queue.get(timeout=0.1) == "acme"
        assert queue.get(timeout=0.05) is None

    def test_readded_while_processing_comes_back_once_after_done(self) -> None:
        queue = WorkQueue()
        queue.add("acme")
        assert queue.get(timeout=0.1) == "acme"
        queue.add("acme")
        queue.add("acme")
        assert queue.get(timeout=0.05) is None  # never handed to two workers at once
        queue.done("acme")
        assert queue.get(timeout=0.1) == "acme"

    def test_delay_and_priority(self) -> None:
        queue = WorkQueue()
        queue.add("later", 0.2)
        queue.add(ALL, priority=1)
        queue.add("nudged", priority=0)
        assert queue.get(timeout=0.1) == "nudged"
        assert queue.get(timeout=0.1) == ALL
        started = time.monotonic()
        assert queue.get(timeout=1) == "later"
        assert time.monotonic() - started >= 0.1

    def test_close_wakes_a_waiting_worker(self) -> None:
        queue = WorkQueue()
        result: list[str | None] = []
        worker = threading.Thread(target=lambda: result.append(queue.get()))
        worker.start()
        queue.close()
        worker.join(timeout=2)
        assert result == [None]


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(1.0, 5.0)
    assert [backoff.failure("t") for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.success("t")
    assert backoff.failure("t") == 1.0
