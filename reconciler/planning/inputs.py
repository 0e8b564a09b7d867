"""What the planning function is given: the observed world of every layer, and the settings that shape a plan.

Built by the runtime (``runtime.passes.reconcile``) from its drivers, and by the golden tests from YAML; pure
values only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from desired_state.model import VolumeBinding
from reconciler.core.canary_steps import Canary
from reconciler.core.diff import SubnetPool
from reconciler.core.dns import Policy, RRset
from reconciler.core.plan import Plan
from reconciler.core.policies import MassDeleteLimits
from reconciler.core.resources import ContainerDefaults, HealthCheck, Snapshot
from reconciler.core.routes import RouteFile
from reconciler.core.upgrades import Pin
from reconciler.planning.placement import SwarmSettings
from reconciler.planning.render_cache import RenderCache
from renderers.containers import Naming
from renderers.dns import DnsTarget


@dataclass(frozen=True)
class ZoneState:
    """One managed DNS zone as read this pass: its rrsets, or why they could not be read."""

    rrsets: tuple[RRset, ...] = ()
    missing: bool = False  # the server has no such zone
    error: str | None = None  # it could not be read (the zone's tenants get no DNS change this pass)
    # Missing, but created on apply (``powerdns_create_zones``): planned as an empty zone.
    will_create: bool = False

    @property
    def readable(self) -> bool:
        return self.error is None and (not self.missing or self.will_create)


@dataclass(frozen=True)
class Observed:
    """Everything one pass saw. ``routes`` is None when routing is not configured, ``zones`` when DNS is not."""

    snapshot: Snapshot
    routes: Mapping[str, RouteFile] | None = None
    zones: Mapping[str, ZoneState] | None = None


@dataclass(frozen=True)
class RoutingSettings:
    entrypoint: str = "web"


@dataclass(frozen=True)
class DnsSettings:
    zones: tuple[str, ...]
    target: DnsTarget
    policy: Policy = "sync"


@dataclass(frozen=True)
class SiteHosts:
    """The Nginx sites' share of the DNS plan (``planning.site_dns``), built by the sites stage.

    ``hosts``: each valid site's host, by site name; ``keep``: sites whose records stay as they are (invalid rows);
    ``loaded``: sites whose file Nginx has loaded (their records are published only then, by the executor);
    ``target``: where site names point (``RECONCILER_NGINX_PUBLIC_ADDRESS``). Not given to the planner (None):
    records of sites are left alone, whatever they are.
    """

    target: DnsTarget
    hosts: Mapping[str, str] = field(default_factory=dict)
    keep: frozenset[str] = frozenset()
    loaded: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PlanSettings:
    naming: Naming = field(default_factory=Naming)
    pool: SubnetPool = field(default_factory=SubnetPool)
    limits: MassDeleteLimits = field(default_factory=MassDeleteLimits)
    healthcheck: HealthCheck | None = None
    container_defaults: ContainerDefaults | None = None
    routing: RoutingSettings | None = None
    dns: DnsSettings | None = None
    # The Swarm engine (``RECONCILER_ENGINE=swarm``): tenants run as services placed on nodes
    # (``planning.placement``); None: the single engine, one container per replica.
    swarm: SwarmSettings | None = None


@dataclass(frozen=True)
class PassContext:
    """What else decides a pass's plan, besides the desired and the observed state.

    ``scope``: the tenants the pass acts on (None: every tenant, the only kind of pass that removes tenants gone
    from the database). ``held``: tenants an operation works on (a restore), left alone with why. ``pins`` and
    ``policies`` (extra plan filters, e.g. crash-loop holds) come from the runtime. ``removed_recently``: what
    this process removed within the mass-delete window, by layer, so many small passes share one budget.
    ``bindings``: the live data-volume bindings (``data_volumes``), by volume name (``planning.identity``).
    ``sites``: the Nginx sites' hosts, so their DNS records are planned with the tenants' (``planning.site_dns``).
    ``canaries``: the canary analysis's state per tenant (``tenant_canaries``): the weights it imposes on routes.
    ``cache``: a ``RenderCache`` the caller keeps between passes; it changes how fast a plan is made, never what.
    """

    scope: frozenset[str] | None = None
    held: Mapping[str, str] = field(default_factory=dict)
    pins: Mapping[str, Sequence[Pin]] = field(default_factory=dict)
    policies: tuple[Callable[[Plan], Plan], ...] = ()
    removed_recently: Mapping[str, int] = field(default_factory=dict)
    allow_mass_delete: bool = False
    bindings: Mapping[str, VolumeBinding] = field(default_factory=dict)
    # The sites' hosts for the DNS layer (None: no sites stage; site records are then left alone).
    sites: SiteHosts | None = None
    canaries: Mapping[str, Sequence[Canary]] = field(default_factory=dict)
    # Renderings of earlier passes, reused for tenants whose inputs are all equal (``planning.render_cache``);
    # None renders every tenant. Owned by the caller (the run loop keeps one for its life).
    cache: RenderCache | None = field(default=None, compare=False)
    # Swarm only: each tenant's data node as stored (``desired_state.placements``).
    placements: Mapping[str, str] = field(default_factory=dict)
