"""A recording container engine and router for unit tests of the executor's ordering and concurrency.

A pure fake (the real engine is exercised by tests/integration): it keeps containers, networks and volumes in
memory, gives each started container an address, sleeps a (seeded, random) while in every action so actions of
one phase overlap, and records each action's start and end on one timeline, with the high-water mark of actions
in flight. ``probe`` answers readiness from the same state: a container whose slot is in ``unhealthy`` never
answers, one in ``exits`` dies while starting.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from desired_state.model import Condition
from desired_state.specs import TenantSpec
from reconciler.core.resources import Container, Network, Snapshot, Volume
from reconciler.core.routes import RouteFile

TOGETHER_TIMEOUT = 10.0


@dataclass(frozen=True)
class Event:
    what: str  # "run", "start", "stop", "remove", "update", "network", "volume", "remove network", "publish", ...
    name: str
    start: float
    end: float
    detail: tuple[str, ...] = ()


@dataclass
class RecordingEngine:
    seed: int = 0
    pause: float = 0.03  # longest sleep per action; each action sleeps a random share of it
    unhealthy: set[tuple[str, int]] = field(default_factory=set)  # (service, replica) of new containers
    exits: set[tuple[str, int]] = field(default_factory=set)
    containers: dict[str, Container] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # Called when an action begins (after it was counted in flight): tests use it to stop the pass mid-phase.
    on_action: Callable[[str, str], None] | None = None
    peak: int = 0
    # Groups of actions ("run", "network|volume") held until this many of the group are in flight at once, the
    # first time only: tests then know overlap happened instead of hoping the scheduler made it happen. A group
    # that never gets there (a serial executor) is released after ``TOGETHER_TIMEOUT`` and stays out of ``reached``.
    together: dict[str, int] = field(default_factory=dict)
    reached: set[str] = field(default_factory=set)
    first_images: dict[tuple[str, str, int], str] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    _busy: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_ip: int = 2

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._changed = threading.Condition(self._lock)
        self._in_flight: Counter[str] = Counter()

    def _hold_until_together(self, what: str) -> None:
        """Called with the lock held, ``what`` already counted in flight."""
        for group, parties in self.together.items():
            members = group.split("|")
            if what not in members or group in self.reached:
                continue
            if sum(self._in_flight[m] for m in members) >= parties:
                self.reached.add(group)
                self._changed.notify_all()
            else:
                self._changed.wait_for(lambda g=group: g in self.reached, timeout=TOGETHER_TIMEOUT)

    # --- recording --------------------------------------------------------------------------------------------

    def _act(self, what: str, name: str, effect: Callable[[], None]) -> None:
        with self._lock:
            self._busy += 1
            self._in_flight[what] += 1
            self.peak = max(self.peak, self._busy)
            self.calls["mutate"] += 1
            pause = self._random.uniform(0.2, 1.0) * self.pause
            self._hold_until_together(what)
        if self.on_action is not None:
            self.on_action(what, name)
        start = time.monotonic()
        time.sleep(pause)
        with self._lock:
            effect()
            self._busy -= 1
            self._in_flight[what] -= 1
            self.events.append(Event(what, name, start, time.monotonic()))

    def record(self, what: str, name: str, detail: tuple[str, ...] = ()) -> None:
        now = time.monotonic()
        with self._lock:
            self.events.append(Event(what, name, now, now, detail))

    def timeline(self, *whats: str) -> list[Event]:
        with self._lock:
            return sorted((e for e in self.events if not whats or e.what in whats), key=lambda e: e.start)

    @property
    def published(self) -> list[tuple[str, ...]]:
        """The backends of every ``publish``, in order."""
        return [e.detail for e in self.timeline("publish")]

    # --- ContainerEngine ---------------------------------------------------------------------------------------

    def observe(self, tenant: str | None = None, *, scope: Collection[str] | None = None) -> Snapshot:
        with self._lock:
            self.calls["list"] += 3
            return Snapshot(
                containers=tuple(
                    sorted((c for c in self.containers.values() if tenant in (None, c.tenant)), key=lambda c: c.name)
                ),
                networks=tuple(n for n in self.networks.values() if tenant in (None, n.tenant)),
                volumes=tuple(v for v in self.volumes.values() if tenant in (None, v.tenant)),
                used_subnets=tuple(n.subnet for n in self.networks.values() if n.subnet),
            )

    def container(self, name: str) -> Container | None:
        with self._lock:
            self.calls["list"] += 1
            return self.containers.get(name)

    def used_subnets(self) -> list[str]:
        return list(self.observe().used_subnets)

    def create_network(self, network: Network, labels: dict[str, str]) -> None:
        self._act("network", network.name, lambda: self.networks.__setitem__(network.name, network))

    def remove_network(self, network: Network) -> None:
        self._act("remove network", network.name, lambda: self.networks.pop(network.name, None))

    def create_volume(self, volume: Volume, labels: dict[str, str]) -> None:
        self._act("volume", volume.name, lambda: self.volumes.__setitem__(volume.name, volume))

    def _up(self, container: Container) -> None:
        slot = (container.service, container.replica)
        state = "exited" if slot in self.exits else "running"
        ip = f"10.9.0.{self._next_ip}"
        self._next_ip += 1
        self.containers[container.name] = replace(
            container, state=state, ip=ip if state == "running" else None, networks=(container.network,)
        )

    def run_container(self, container: Container) -> None:
        if container.network not in self.networks:
            raise AssertionError(f"{container.name} created before its network {container.network}")
        self._act("run", container.name, lambda: self._up(container))

    def start_container(self, container: Container) -> None:
        self._act("start", container.name, lambda: self._up(self.containers.get(container.name, container)))

    def stop_container(self, container: Container) -> None:
        def stop() -> None:
            self.containers[container.name] = replace(self.containers[container.name], state="exited", ip=None)

        self._act("stop", container.name, stop)

    def update_container(self, container: Container) -> None:
        self._act("update", container.name, lambda: None)

    def remove_container(self, container: Container) -> None:
        self._act("remove", container.name, lambda: self.containers.pop(container.name, None))

    # --- readiness --------------------------------------------------------------------------------------------

    def probe(self, container: Container, timeout: float) -> tuple[bool, str]:
        if (container.service, container.replica) in self.unhealthy and container.image != self.old_image(container):
            time.sleep(min(timeout, 0.02))
            return False, "answered 503"
        return True, "answered 200"

    def old_image(self, container: Container) -> str | None:
        """The image the first container of the slot ran (what served before a replacement)."""
        return self.first_images.get((container.tenant, container.service, container.replica))

    def seed_running(self, containers: Sequence[Container]) -> None:
        """Containers that ran before the pass (their networks must be seeded too)."""
        for container in containers:
            self._up(container)
            self.first_images[(container.tenant, container.service, container.replica)] = container.image


@dataclass
class RecordingRouter:
    engine: RecordingEngine
    published: list[tuple[str, ...]] = field(default_factory=list)

    def observe_files(self) -> dict[str, RouteFile]:
        return {}

    def begin_pass(self, files: Mapping[str, RouteFile]) -> None:
        return None

    def publish(self, spec: TenantSpec, backends: Sequence[Container]) -> None:
        for backend in backends:
            assert backend.name in self.engine.containers, f"{backend.name} routed but not running"
        names = tuple(b.name for b in backends)
        self.published.append(names)
        self.engine.record("publish", spec.name, names)

    def withdraw(self, tenant: str) -> None:
        self.engine.record("withdraw", tenant)

    def ready(self, tenant: str) -> Condition:
        return Condition("RouteReady", "True", "Ready", "")


@dataclass
class RecordingGate:
    refuse: Mapping[str, str] = field(default_factory=dict)  # service -> why
    results: list[dict[str, str | None]] = field(default_factory=list)

    def before_upgrades(self, spec: TenantSpec, upgrades: Sequence[object]) -> Mapping[object, str]:
        return {u: self.refuse[u.service] for u in upgrades if u.service in self.refuse}  # type: ignore[attr-defined]

    def after_upgrades(self, spec: TenantSpec, results: Mapping[object, str | None]) -> None:
        self.results.append({u.service: why for u, why in results.items()})  # type: ignore[attr-defined]
