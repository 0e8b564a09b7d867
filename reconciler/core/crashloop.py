"""Crash loops (pure): counting a replica's deaths, its backoff, and the policy that withholds restarts.

A replica is identified by its slot and spec hash (``SlotKey``): a new spec (the operator's fix) is a new
attempt with a clean history. The runtime's tracker (``runtime.service.crashloop``) feeds deaths from Docker events
into ``record_death`` with its clock and hands the current ``CrashLoop`` values to ``withhold_crash_looping``,
a plan → plan filter like those in ``core.policies``: while a replica's backoff runs, no pass (nudged or
periodic) creates, starts or replaces it again, and the plan says why.

Under the Swarm engine (docs/swarm.md "Crash loops") deaths are Swarm tasks that failed (``runtime.service.
swarm_tasks``): the key holds the task's slot and the spec hash of its service, and while the backoff of any slot
of a service runs, no pass creates or updates that service with that spec (``service_loops``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.plan import Action, Change, Plan, Refusal
from reconciler.core.resources import Container
from reconciler.core.services import Service

# tenant, service, track, replica, spec hash
SlotKey = tuple[str, str, str, int, str]


def slot_key(container: Container) -> SlotKey:
    return (container.tenant, container.service, container.track, container.replica, container.spec_hash)


@dataclass(frozen=True)
class CrashLoopLimits:
    # A replica that dies this many times ...
    deaths: int = 3
    # ... within this many seconds is crash-looping.
    window: float = 120.0
    # Then the reconciler leaves it alone for this long, doubling after each failed attempt, up to the cap.
    backoff_initial: float = 30.0
    backoff_max: float = 600.0

    def backoff(self, level: int) -> float:
        return float(min(self.backoff_max, self.backoff_initial * 2**level))


@dataclass(frozen=True)
class SlotHistory:
    deaths: tuple[float, ...] = ()
    # Backoff level (number of failed attempts since the loop began) and until when restarts are withheld.
    level: int = 0
    hold_until: float | None = None

    def recent(self, now: float, limits: CrashLoopLimits) -> tuple[float, ...]:
        return tuple(t for t in self.deaths if now - t < limits.window)

    def looping(self, now: float, limits: CrashLoopLimits) -> bool:
        return len(self.recent(now, limits)) >= limits.deaths

    def held(self, now: float) -> bool:
        return self.hold_until is not None and now < self.hold_until


def record_death(history: SlotHistory, now: float, limits: CrashLoopLimits) -> SlotHistory:
    """One more death. Entering a loop starts the backoff; a death after the backoff ran out (a failed
    attempt) doubles it; deaths during the backoff (Docker's own restarts) leave it as it is."""
    deaths = (*history.recent(now, limits), now)
    if len(deaths) < limits.deaths:
        return SlotHistory(deaths, history.level, history.hold_until)
    if history.hold_until is None:
        return SlotHistory(deaths, 0, now + limits.backoff(0))
    if now >= history.hold_until:
        level = history.level + 1
        return SlotHistory(deaths, level, now + limits.backoff(level))
    return SlotHistory(deaths, history.level, history.hold_until)


def settled(history: SlotHistory, now: float, limits: CrashLoopLimits) -> bool:
    """No death within the window and no backoff running: the history can be forgotten."""
    return not history.recent(now, limits) and not history.held(now)


@dataclass(frozen=True)
class CrashLoop:
    """A replica that keeps dying, as the status, the alert and the policy describe it."""

    key: SlotKey
    container: str
    deaths: int
    window: float
    cause: str  # e.g. "exited with code 1", "Docker health check unhealthy"
    hold_until: float | None  # on the same clock as ``now`` in ``withhold_crash_looping``
    logs: str = ""

    def describe(self) -> str:
        _, service, track, replica, _ = self.key
        name = f"{service}{'-' + track if track else ''} replica {replica}"
        return f"{name} ({self.container}) died {self.deaths} times in {self.window:g}s, last: {self.cause}"


_RESTARTING = frozenset({Action.CREATE, Action.REPLACE})
# A service update re-asserts the spec Swarm rolled back from, which restarts its tasks: withheld like a restart.
_SERVICE_RESTARTING = frozenset({Action.CREATE, Action.UPDATE})


def service_loops(service: Service, loops: Mapping[SlotKey, CrashLoop]) -> list[CrashLoop]:
    """The crash loops of any slot of a Swarm service running this spec (its tasks carry the service's hash)."""
    return [
        loop
        for (tenant, name, track, _, digest), loop in sorted(loops.items())
        if (tenant, name, track, digest) == (service.tenant, service.service, service.track, service.spec_hash)
    ]


def _held(loops: list[CrashLoop], now: float) -> CrashLoop | None:
    held = [loop for loop in loops if loop.hold_until is not None and now < loop.hold_until]
    return max(held, key=lambda loop: loop.hold_until or 0.0) if held else None


def _restarts(change: Change) -> bool:
    return isinstance(change.after, Container) and (
        change.action in _RESTARTING or (change.action is Action.UPDATE and change.operation == "start")
    )


def _withheld_by(change: Change, loops: Mapping[SlotKey, CrashLoop], now: float) -> CrashLoop | None:
    after = change.after
    if isinstance(after, Service):
        return _held(service_loops(after, loops), now) if change.action in _SERVICE_RESTARTING else None
    if isinstance(after, Container) and _restarts(change) and slot_key(after) in loops:
        return _held([loops[slot_key(after)]], now)
    return None


def withhold_crash_looping(plan: Plan, loops: Mapping[SlotKey, CrashLoop], now: float) -> Plan:
    """Withhold creating, starting or replacing a replica (creating or updating a Swarm service) whose backoff
    still runs."""
    if not loops:
        return plan
    kept: list[Change] = []
    refused = list(plan.refused)
    for change in plan.changes:
        loop = _withheld_by(change, loops, now)
        if loop is None or loop.hold_until is None:
            kept.append(change)
            continue
        wait = loop.hold_until - now
        refused.append(Refusal(change, "crash-loop", f"{loop.describe()}; next attempt in {wait:.0f}s"))
    return plan.with_changes(kept, refused)
