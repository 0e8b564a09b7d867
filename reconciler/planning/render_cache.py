"""A bounded memo of what rendering a tenant gives, for a caller that plans the same fleet again and again.

``reconciler run`` plans the whole fleet on every pass, and most tenants are the same as last pass: the same spec,
the same settings, the same backends. Rendering them (containers with their spec hashes, the route file's text,
the DNS records) was two thirds of a plan at 10 000 tenants. A ``RenderCache`` keeps, per tenant, the last
rendering of each kind with everything it was rendered from, and gives it back only when every one of those
inputs is equal (compared by value: ``==`` on the frozen spec, settings and backends). A miss renders and
replaces the tenant's entry; nothing is ever served for an input that differs, so a plan with a cache is the plan
without one (``tests/unit/test_render_cache.py``). It also keeps which tenants the container diff found converged,
with every input of that finding, so an unchanged converged tenant is not diffed again (``core.diff.diff``).

The cache is a value the caller owns and passes in ``PassContext.cache``, never a module global: the planner stays
a function of its arguments, a plan without a cache renders everything (``reconciler plan``, the golden tests),
and two reconcilers in one process share nothing. It is bounded: at most ``max_tenants`` tenants per kind (one
entry each, the oldest dropped first), so a fleet that shrinks or renames does not grow it. Passes of different
tenants may plan side by side (``runtime.passes.reconcile``): every lookup holds the cache's lock, so each one sees
and leaves a consistent entry (rendering is pure Python under the GIL, so the lock costs no parallelism).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from desired_state.specs import TenantSpec
from reconciler.core.resources import Container, ContainerDefaults, DesiredTenant, HealthCheck
from reconciler.core.routes import RouteFile
from renderers.containers import Naming, render_tenant
from renderers.dns import DnsTarget, HostRecords, render_host_records
from renderers.traefik import RouteNaming

T = TypeVar("T")
DEFAULT_MAX_TENANTS = 100_000


class _Memo(Generic[T]):
    """One entry per tenant: (the inputs, the result); served only when the inputs are equal."""

    def __init__(self, max_tenants: int) -> None:
        self.max_tenants = max_tenants
        self.entries: dict[str, tuple[tuple[object, ...], T]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, tenant: str, inputs: tuple[object, ...], make: Callable[[], T]) -> T:
        entry = self.entries.get(tenant)
        if entry is not None and entry[0] == inputs:
            self.hits += 1
            return entry[1]
        self.misses += 1
        value = make()  # raises before anything is stored: a failed render is never cached
        self.entries.pop(tenant, None)
        while len(self.entries) >= self.max_tenants:
            del self.entries[next(iter(self.entries))]
        self.entries[tenant] = (inputs, value)
        return value


class RenderCache:
    """The last containers, route file and DNS records rendered for each tenant, with what they came from."""

    def __init__(self, max_tenants: int = DEFAULT_MAX_TENANTS) -> None:
        if max_tenants < 1:
            raise ValueError(f"RenderCache: max_tenants must be at least 1, not {max_tenants}")
        self.containers: _Memo[DesiredTenant] = _Memo(max_tenants)
        self.routes: _Memo[RouteFile] = _Memo(max_tenants)
        self.records: _Memo[HostRecords] = _Memo(max_tenants)
        # Per tenant: the spec the entries were keyed with, and the last object found equal to it. A pass looks a
        # spec up three times (containers, route, records): comparing it by value once and then by identity
        # keeps pydantic's deep ``==`` to one per tenant and pass.
        self.specs: dict[str, tuple[TenantSpec, TenantSpec]] = {}
        self.max_tenants = max_tenants
        self._lock = threading.Lock()
        # Tenants the container diff found converged, with every input of that finding (``core.diff.diff``).
        # Written by the diff outside the lock (one dict operation at a time, atomic under the GIL); trimmed by
        # ``trim`` after each plan.
        self.converged: dict[str, tuple[object, ...]] = {}

    def trim(self) -> None:
        """Drop the oldest converged findings beyond ``max_tenants``."""
        excess = len(self.converged) - self.max_tenants
        if excess > 0:
            for name in list(self.converged)[:excess]:
                self.converged.pop(name, None)

    def _spec(self, spec: TenantSpec) -> TenantSpec:
        """The spec to key with: the stored one when ``spec`` equals it (so later keys compare by identity)."""
        known = self.specs.get(spec.name)
        if known is not None:
            canonical, last = known
            if spec is last or spec is canonical:
                return canonical
            if spec == canonical:
                self.specs[spec.name] = (canonical, spec)  # held, so its identity cannot be reused
                return canonical
        self.specs.pop(spec.name, None)
        while len(self.specs) >= self.max_tenants:
            del self.specs[next(iter(self.specs))]
        self.specs[spec.name] = (spec, spec)
        return spec

    def stats(self) -> dict[str, tuple[int, int]]:
        """(hits, misses) of each kind since the cache was made."""
        with self._lock:
            return {
                "containers": (self.containers.hits, self.containers.misses),
                "routes": (self.routes.hits, self.routes.misses),
                "records": (self.records.hits, self.records.misses),
            }

    def tenant(
        self,
        spec: TenantSpec,
        naming: Naming,
        *,
        healthcheck: HealthCheck | None,
        defaults: ContainerDefaults | None,
        uid: str | None,
    ) -> DesiredTenant:
        """``render_tenant`` with these arguments: every one of them is in the key."""
        with self._lock:
            spec = self._spec(spec)
            return self.containers.get(
                spec.name,
                (spec, naming, healthcheck, defaults, uid),
                lambda: render_tenant(spec, naming, healthcheck=healthcheck, defaults=defaults, uid=uid),
            )

    def route(
        self,
        spec: TenantSpec,
        backends: tuple[Container, ...],
        planned: bool,
        key: tuple[RouteNaming, str, str],
        make: Callable[[], RouteFile],
    ) -> RouteFile:
        """The route file ``make`` renders from the spec, the backends (by value), ``planned`` and ``key``
        (route naming, entrypoint, owner)."""
        with self._lock:
            return self.routes.get(spec.name, (self._spec(spec), backends, planned, *key), make)

    def host_records(self, spec: TenantSpec, target: DnsTarget, zones: tuple[str, ...], owner: str) -> HostRecords:
        """``render_host_records`` with these arguments: every one of them is in the key."""
        with self._lock:
            spec = self._spec(spec)
            return self.records.get(
                spec.name,
                (spec, target, zones, owner),
                lambda: render_host_records(spec, target, zones, owner),
            )
