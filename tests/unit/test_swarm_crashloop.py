"""Crash loops under the Swarm engine (issue 13): task deaths read from the task list, the tracker and the policy."""

from __future__ import annotations

import threading
from typing import Any

from reconciler.core.crashloop import CrashLoop, CrashLoopLimits, withhold_crash_looping
from reconciler.core.plan import Action, Change, Plan
from reconciler.core.resources import DesiredTenant
from reconciler.core.services import Service
from reconciler.drivers.swarm.tasks import TaskDeath, task_deaths
from reconciler.runtime.service.crashloop import CrashTracker
from reconciler.runtime.service.swarm_tasks import TaskWatcher
from reconciler.runtime.service.workqueue import WorkQueue

LIMITS = CrashLoopLimits(deaths=3, window=60, backoff_initial=10, backoff_max=40)
LABELS = {
    "tenant-reconciler.managed": "true",
    "tenant-reconciler.owner": "o1",
    "tenant-reconciler.tenant": "acme",
    "tenant-reconciler.service": "a",
    "tenant-reconciler.spec-hash": "h1",
}


def _task(task: str, state: str, *, slot: int = 1, err: str = "", code: int | None = None, **labels: str) -> Any:
    status: dict[str, Any] = {"State": state, "Err": err}
    if code is not None:
        status["ContainerStatus"] = {"ExitCode": code}
    return {
        "ID": task,
        "ServiceID": "svc1",
        "Slot": slot,
        "Status": status,
        "Spec": {"ContainerSpec": {"Labels": LABELS | labels}},
    }


def test_task_deaths_are_tasks_of_ours_that_ended_on_their_own() -> None:
    raw = [
        _task("t1", "failed", err="task: non-zero exit (1)", code=1),
        _task("t2", "rejected", err="No such image: erp/x:9"),
        _task("t3", "complete", code=0),
        _task("t4", "failed", err="task: unhealthy container", code=143),
        _task("t5", "shutdown", code=0),  # stopped by an update or a scale-down: not a death
        _task("t6", "running"),
        _task("t7", "failed", code=1, **{"tenant-reconciler.owner": "someone-else"}),
    ]
    deaths = {d.task: d for d in task_deaths(raw, "o1")}
    assert sorted(deaths) == ["t1", "t2", "t3", "t4"]
    assert deaths["t1"].cause == "exited with code 1"
    assert deaths["t2"].cause == "rejected by its node: No such image: erp/x:9"
    assert deaths["t3"].cause == "exited with code 0"
    assert deaths["t4"].cause == "Docker health check reports unhealthy"
    assert (deaths["t1"].tenant, deaths["t1"].service, deaths["t1"].slot, deaths["t1"].spec_hash) == (
        "acme",
        "a",
        1,
        "h1",
    )


def _service(spec_hash: str = "h1") -> Service:
    return Service(
        name="erp-acme-a",
        tenant="acme",
        service="a",
        track="",
        image="reg:5000/erp/demo-svc:1",
        replicas=2,
        spec_hash=spec_hash,
        network="erp-acme",
        volume=None,
        node=None,
        port=8080,
    )


def test_policy_withholds_creating_and_updating_a_looping_service_spec_only() -> None:
    looping = _service("h1")
    loop = CrashLoop(("acme", "a", "", 2, "h1"), "task abc", 3, 60, "exited with code 1", hold_until=100.0)
    update = Change(Action.UPDATE, "service", "acme", looping.name, "replicas 3 -> 2", after=looping)
    create = Change(Action.CREATE, "service", "acme", looping.name, "missing", after=looping)
    fix = Change(Action.UPDATE, "service", "acme", looping.name, "spec changed", after=_service("h2"))
    delete = Change(Action.DELETE, "service", "acme", looping.name, "gone", before=looping)
    loops = {loop.key: loop}
    for change in (update, create):
        plan = withhold_crash_looping(Plan(changes=(change,)), loops, now=50.0)
        assert plan.changes == () and plan.refused[0].policy == "crash-loop"
        assert "a replica 2 (task abc) died 3 times" in plan.refused[0].reason
        assert withhold_crash_looping(Plan(changes=(change,)), loops, now=100.0).changes == (change,)
    for change in (fix, delete):
        assert withhold_crash_looping(Plan(changes=(change,)), loops, now=50.0).changes == (change,)


class _Swarm:
    def __init__(self) -> None:
        self.tasks: list[Any] = []
        self.logs_read: list[str] = []

    def task_deaths(self) -> list[TaskDeath]:
        return task_deaths(self.tasks, "o1")

    def task_logs(self, task: str, tail: int = 10) -> str:
        self.logs_read.append(task)
        return "erp-serve: crashing after 2s as asked (ERP_CRASH_AFTER)"


def test_watcher_feeds_new_deaths_to_the_tracker_and_nudges_the_tenant() -> None:
    now = [0.0]
    swarm = _Swarm()
    tracker = CrashTracker(None, LIMITS, clock=lambda: now[0])  # type: ignore[arg-type]
    watcher = TaskWatcher(swarm, tracker, interval=1.0)  # type: ignore[arg-type]
    queue = WorkQueue(cooldown=0.0)
    swarm.tasks = [_task("old", "failed", code=1)]
    assert watcher.poll() == []  # dead before the watcher started: history
    for n in range(3):
        now[0] += 5
        swarm.tasks.append(_task(f"t{n}", "failed", code=1, slot=1))
        for death in watcher.poll():
            watcher.take(death, queue)
    assert swarm.logs_read == ["t2"]  # read once, when the loop began
    [item] = queue.get_batch(10, timeout=1.0)
    assert (item.key, item.trigger) == ("acme", "event")

    desired = DesiredTenant(tenant="acme", network=None, volume=None, containers=(), services=(_service("h1"),))
    [condition] = tracker.conditions("acme", desired, None)
    assert condition.status == "True" and condition.reason == "CrashLoop"
    assert "died 3 times in 60s, last: exited with code 1" in condition.message
    assert "crashing after 2s as asked" in condition.message
    # The operator's fix is a new spec: its service is not degraded.
    fixed = DesiredTenant(tenant="acme", network=None, volume=None, containers=(), services=(_service("h2"),))
    assert tracker.conditions("acme", fixed, None)[0].status == "False"


def test_watcher_keeps_watching_after_a_failed_listing() -> None:
    class Broken(_Swarm):
        calls = 0

        def task_deaths(self) -> list[TaskDeath]:
            self.calls += 1
            if self.calls == 1:
                from reconciler.core.errors import TransientError

                raise TransientError("list tasks: manager not reachable", system="swarm")
            return []

    swarm = Broken()
    stop = threading.Event()
    watcher = TaskWatcher(swarm, CrashTracker(None, LIMITS), interval=0.01)  # type: ignore[arg-type]
    thread = threading.Thread(target=watcher.run, args=(WorkQueue(), stop))
    thread.start()
    while swarm.calls < 3:
        stop.wait(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
