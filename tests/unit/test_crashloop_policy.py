"""Crash loops (issue 5): death counting, backoff, the plan policy, and the tracker fed by Docker events."""

from __future__ import annotations

from dataclasses import replace

from desired_state.model import Condition, TenantStatus
from reconciler.core.crashloop import (
    CrashLoop,
    CrashLoopLimits,
    SlotHistory,
    record_death,
    slot_key,
    withhold_crash_looping,
)
from reconciler.core.plan import Action, Change, Plan
from reconciler.core.resources import (
    LABEL_REPLICA,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    LABEL_TENANT,
    Container,
    DesiredTenant,
)
from reconciler.drivers.docker import DockerEvent
from reconciler.runtime.service.crashloop import CrashTracker

LIMITS = CrashLoopLimits(deaths=3, window=60, backoff_initial=10, backoff_max=40)


def _container(spec_hash: str = "aaaa", state: str = "running") -> Container:
    return Container(
        name=f"erp-acme-a-0-{spec_hash}",
        tenant="acme",
        service="a",
        replica=0,
        image="erp/demo-svc:1",
        spec_hash=spec_hash,
        network="erp-acme",
        volume="erp-acme-data",
        port=8080,
        state=state,
    )


def test_three_deaths_in_the_window_start_a_backoff_that_doubles_after_failed_attempts() -> None:
    history = SlotHistory()
    for now in (0.0, 5.0):
        history = record_death(history, now, LIMITS)
        assert not history.looping(now, LIMITS) and history.hold_until is None
    history = record_death(history, 9.0, LIMITS)
    assert history.looping(9.0, LIMITS) and history.hold_until == 19.0
    history = record_death(history, 12.0, LIMITS)  # Docker's own restart, during the backoff
    assert history.hold_until == 19.0 and history.level == 0
    history = record_death(history, 25.0, LIMITS)  # an attempt after the backoff failed
    assert history.level == 1 and history.hold_until == 45.0
    history = record_death(history, 50.0, LIMITS)
    assert history.level == 2 and history.hold_until == 90.0
    history = record_death(record_death(history, 91.0, LIMITS), 92.0, LIMITS)
    assert history.level == 3 and history.hold_until == 132.0  # 80 s capped at 40 s
    assert not history.looping(200.0, LIMITS)


def test_deaths_outside_the_window_do_not_count() -> None:
    history = SlotHistory()
    for now in (0.0, 50.0, 100.0, 150.0):
        history = record_death(history, now, LIMITS)
    assert not history.looping(150.0, LIMITS)


def _plan(*changes: Change) -> Plan:
    return Plan.of(list(changes))


def test_policy_withholds_start_create_and_replace_of_the_looping_spec_only() -> None:
    looping = _container("aaaa")
    loop = CrashLoop(slot_key(looping), looping.name, 3, 60, "exited with code 1", hold_until=100.0)
    start = Change(
        Action.UPDATE,
        "container",
        "acme",
        looping.name,
        "exited",
        before=replace(looping, state="exited"),
        after=looping,
        operation="start",
    )
    create = Change(Action.CREATE, "container", "acme", looping.name, "missing", after=looping)
    fixed = _container("bbbb")
    fix = Change(
        Action.REPLACE, "container", "acme", fixed.name, "env", before=looping, after=fixed, operation="replace"
    )
    loops = {slot_key(looping): loop}

    for change in (start, create):
        plan = withhold_crash_looping(_plan(change), loops, now=50.0)
        assert plan.changes == ()
        assert plan.refused[0].policy == "crash-loop"
        assert "died 3 times in 60s" in plan.refused[0].reason and "next attempt in 50s" in plan.refused[0].reason
        # After the backoff, one attempt goes through.
        assert withhold_crash_looping(_plan(change), loops, now=100.0).changes == (change,)
    # The operator's fix is a new spec: never withheld.
    assert withhold_crash_looping(_plan(fix), loops, now=50.0).changes == (fix,)


class _Logs:
    def logs(self, name: str, tail: int = 20) -> str:
        return "line 1\nerp-serve: crashing after 2s as asked (ERP_CRASH_AFTER)"


def _event(action: str, spec_hash: str = "aaaa", **extra: str) -> DockerEvent:
    attributes = {
        LABEL_TENANT: "acme",
        LABEL_SERVICE: "a",
        LABEL_REPLICA: "0",
        LABEL_SPEC_HASH: spec_hash,
        "name": f"erp-acme-a-0-{spec_hash}",
        **extra,
    }
    return DockerEvent("container", action, "acme", attributes["name"], attributes)


def test_tracker_counts_crashes_not_stops_and_reports_degraded_then_recovered() -> None:
    now = [0.0]
    tracker = CrashTracker(_Logs(), LIMITS, clock=lambda: now[0])  # type: ignore[arg-type]
    desired = DesiredTenant("acme", None, None, (_container("aaaa"),))

    # Our own stops (kill, then die) are not crashes.
    for _ in range(5):
        assert not tracker.observe(_event("kill", signal="15"))
        assert not tracker.observe(_event("die", exitCode="0"))
    assert tracker.conditions("acme", desired, None) == [Condition("Degraded", "False", "NoCrashLoop")]

    entered = []
    for step in range(3):
        now[0] = 1.0 + step
        entered.append(tracker.observe(_event("die", exitCode="1")))
    assert entered == [False, False, True]
    [degraded] = tracker.conditions("acme", desired, None)
    assert degraded.status == "True" and degraded.reason == "CrashLoop"
    assert "exited with code 1" in degraded.message and "ERP_CRASH_AFTER" in degraded.message

    # The fix: a new spec hash has no history.
    fixed = DesiredTenant("acme", None, None, (_container("bbbb"),))
    assert tracker.conditions("acme", fixed, None)[0].status == "False"

    # Unchanged spec, no more deaths: recovered once the window has passed (and the backoff ended).
    now[0] = 100.0
    assert tracker.conditions("acme", desired, None)[0].status == "False"


def test_tracker_keeps_a_stored_degraded_verdict_for_one_window_after_a_restart() -> None:
    now = [0.0]
    tracker = CrashTracker(_Logs(), LIMITS, clock=lambda: now[0])  # type: ignore[arg-type]
    desired = DesiredTenant("acme", None, None, (_container("aaaa"),))
    stored = TenantStatus("acme", "Degraded", (Condition("Degraded", "True", "CrashLoop", "died 3 times"),))
    assert tracker.conditions("acme", desired, stored)[0].status == "True"
    now[0] = 61.0
    assert tracker.conditions("acme", desired, stored)[0].status == "False"


def test_unhealthy_counts_like_a_death() -> None:
    now = [0.0]
    tracker = CrashTracker(_Logs(), LIMITS, clock=lambda: now[0])  # type: ignore[arg-type]
    for step in range(3):
        now[0] = float(step)
        tracker.observe(_event("health_status: unhealthy"))
    loops = tracker.loops()
    assert next(iter(loops.values())).cause == "Docker health check reports unhealthy"
