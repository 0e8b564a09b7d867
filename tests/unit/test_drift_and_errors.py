"""Drift the labels cannot show (inspected limits), the errors drivers raise, and what the loop does with them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.diff import diff, limits_drift
from reconciler.core.errors import PermanentError, ReconcileError, TransientError
from reconciler.core.plan import Action
from reconciler.core.resources import ContainerDefaults, DesiredTenant, Snapshot
from reconciler.drivers.docker.errors import translate
from reconciler.drivers.docker.inspect import InspectionMarks, observed_limits
from reconciler.runtime.service.retries import PermanentHolds, retry_delay
from renderers.containers import Naming, render_tenant

MIB = 1024**2
CATALOG = parse_catalog({"a": {"image": "erp/demo-svc:1", "memory": "64M", "cpus": 0.25}})
NAMING = Naming(prefix="erp", owner="test")
DEFAULTS = ContainerDefaults(pids_limit=256, log_max_size="5m", log_max_file=2, no_new_privileges=True)


def render(replicas: int = 2, defaults: ContainerDefaults | None = DEFAULTS) -> DesiredTenant:
    spec = build_tenant({"name": "acme", "domain": "acme.erp.test", "services": {"a": {"replicas": replicas}}}, CATALOG)
    return render_tenant(spec, NAMING, defaults=defaults)


def inspected(desired: DesiredTenant, **host: Any) -> Snapshot:
    """The engine after applying ``desired``, every container inspected; ``host`` overrides HostConfig of the first."""
    assert desired.network is not None and desired.volume is not None
    containers = []
    for index, want in enumerate(desired.containers):
        config = {"Memory": want.memory, "NanoCpus": round((want.cpus or 0) * 1e9), "PidsLimit": want.pids_limit}
        if index == 0:
            config |= host
        raw = {"HostConfig": config, "NetworkSettings": {"Networks": {want.network: {}}}}
        containers.append(observed_limits(replace(want, env=None, ip="10.0.0.2"), raw))
    return Snapshot(
        containers=tuple(containers),
        networks=(replace(desired.network, subnet="10.213.0.0/26"),),
        volumes=(desired.volume,),
    )


def test_inspected_containers_as_applied_plan_nothing() -> None:
    desired = render()
    assert diff({"acme": desired}, inspected(desired)).empty


def test_changed_memory_is_one_in_place_update_of_that_container_only() -> None:
    desired = render()
    plan = diff({"acme": desired}, inspected(desired, Memory=48 * MIB))
    assert [(c.action, c.operation, c.name) for c in plan.changes] == [
        (Action.UPDATE, "update", desired.containers[0].name)
    ]
    change = plan.changes[0]
    assert "memory 48MiB -> 64MiB" in change.reason
    assert change.after is not None and change.after.memory == 64 * MIB  # type: ignore[union-attr]


def test_cpus_and_pids_drift_named_in_the_reason() -> None:
    desired = render(replicas=1)
    plan = diff({"acme": desired}, inspected(desired, NanoCpus=1_000_000_000, PidsLimit=0))
    assert len(plan.changes) == 1
    assert "cpus 1.0 -> 0.25" in plan.changes[0].reason
    assert "pids limit none -> 256" in plan.changes[0].reason


def test_limits_the_spec_leaves_unset_are_not_drift() -> None:
    # No pids limit configured: whatever the engine's default is stays (docker update cannot remove a limit).
    desired = render(replicas=1, defaults=None)
    observed = inspected(desired, PidsLimit=4096).containers[0]
    assert limits_drift(desired.containers[0], observed) == []


def test_uninspected_containers_show_no_limits_drift() -> None:
    desired = render(replicas=1)
    observed = replace(desired.containers[0], memory=None, cpus=None, pids_limit=None)
    assert limits_drift(desired.containers[0], observed) == []


def test_network_drift_seen_by_inspection_replaces() -> None:
    desired = render(replicas=1)
    snapshot = inspected(desired)
    lonely = replace(snapshot.containers[0], networks=())
    plan = diff({"acme": desired}, replace(snapshot, containers=(lonely,)))
    assert [(c.action, c.reason) for c in plan.changes] == [(Action.REPLACE, "not attached to network erp-acme")]


def test_defaults_are_rendered_and_part_of_the_spec_hash() -> None:
    with_defaults, without = render(replicas=1).containers[0], render(replicas=1, defaults=None).containers[0]
    assert with_defaults.spec_hash != without.spec_hash
    assert (with_defaults.pids_limit, with_defaults.log_max_size, with_defaults.log_max_file) == (256, "5m", 2)
    assert with_defaults.no_new_privileges and not without.no_new_privileges
    other = render(replicas=1, defaults=replace(DEFAULTS, pids_limit=1024)).containers[0]
    assert other.spec_hash != with_defaults.spec_hash


# --- inspection marks -------------------------------------------------------------------------------------------


def test_round_robin_marks_the_next_containers_in_turn_and_wraps() -> None:
    desired = render(replicas=3)
    marks = InspectionMarks(per_resync=2)
    marks.listed(desired.containers)
    names = sorted(c.name for c in desired.containers)
    assert marks.advance() == names[:2]
    marks.settle({"acme"}, marks.position())
    assert marks.advance() == [names[2], names[0]]


def test_marks_are_inspected_for_tenants_in_scope_and_cleared_only_up_to_the_pass_start() -> None:
    marks = InspectionMarks()
    marks.mark("erp-acme-a-0-x", "acme")
    marks.mark("erp-globex-a-0-y", "globex")
    assert marks.due(["erp-acme-a-0-x", "erp-globex-a-0-y"], {"acme"}) == {"erp-acme-a-0-x"}
    started = marks.position()
    marks.mark("erp-acme-a-1-z", "acme")  # an event during the pass
    marks.settle({"acme"}, started)
    assert marks.due(["erp-acme-a-0-x", "erp-acme-a-1-z", "erp-globex-a-0-y"], None) == {
        "erp-acme-a-1-z",
        "erp-globex-a-0-y",
    }


# --- errors -----------------------------------------------------------------------------------------------------


def _cli_error(code: int, stderr: str) -> DockerException:
    return DockerException(["docker", "run"], code, b"", stderr.encode())


def test_missing_image_is_permanent_and_names_system_operation_key() -> None:
    stderr = "docker: Error response from daemon: No such image: erp/does-not-exist:1.\nRun 'docker run --help'"
    error = translate(_cli_error(125, stderr), "run container", "erp-acme-a-0-1", "acme", 120)
    assert isinstance(error, PermanentError)
    assert (error.system, error.operation, error.key, error.tenant) == (
        "docker",
        "run container",
        "erp-acme-a-0-1",
        "acme",
    )
    assert str(error) == (
        "run container erp-acme-a-0-1: docker: Error response from daemon: No such image: erp/does-not-exist:1."
        " (docker, permanent)"
    )


def test_cli_timeout_is_transient() -> None:
    error = translate(_cli_error(124, ""), "stop container", "erp-acme-a-0-1", "acme", 30)
    assert isinstance(error, TransientError)
    assert str(error) == "stop container erp-acme-a-0-1: no answer within 30s (docker, transient)"


def test_errors_without_a_system_read_as_before() -> None:
    error = TransientError("tenant 'acme': a-0: not ready", tenant="acme", delay=2.0)
    assert str(error) == "tenant 'acme': a-0: not ready" and error.delay == 2.0 and not error.permanent


# --- retry decisions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PermanentError("no such image", system="docker"), None),
        (TransientError("busy", system="traefik", delay=7.0), 7.0),
        (TransientError("busy"), 4.0),
        (ReconcileError("unknown"), 4.0),
        (None, 4.0),
    ],
)
def test_retry_delay(error: ReconcileError | None, expected: float | None) -> None:
    assert retry_delay(error, backoff=4.0) == expected


def test_parked_tenant_waits_for_its_generation_or_the_catalog() -> None:
    holds = PermanentHolds()
    holds.park("acme", 3, "cat-1", "no such image")
    assert holds.held("acme", 3, "cat-1")
    assert holds.held("acme", 3, "cat-1")  # still parked: nothing changed
    assert not holds.held("acme", 4, "cat-1")  # edited: released
    assert not holds.held("acme", 4, "cat-1")
    holds.park("acme", 4, "cat-1", "no such image")
    assert not holds.held("acme", 4, "cat-2")  # the catalog changed (e.g. a new image)
    assert not holds.held("globex", 1, "cat-1")  # never parked
