"""Planning: the pure step between what the database says and what the runtime does.

``plan_pass(desired, observed, settings, context)`` renders every tenant (``renderers``), diffs every layer
(``core.diff`` for networks, volumes and containers, ``core.route_diff`` for Traefik files, ``core.dns`` for
rrsets) and runs the policies over the whole plan (``core.policies``). No I/O: the runtime observes and applies;
the golden tests build the same inputs from YAML.
"""

from reconciler.planning.inputs import (
    DnsSettings,
    Observed,
    PassContext,
    PlanSettings,
    RoutingSettings,
    SiteHosts,
    ZoneState,
)
from reconciler.planning.pass_plan import PassPlan, plan_pass
from reconciler.planning.render_cache import RenderCache

__all__ = [
    "DnsSettings",
    "Observed",
    "PassContext",
    "PassPlan",
    "PlanSettings",
    "RenderCache",
    "RoutingSettings",
    "SiteHosts",
    "ZoneState",
    "plan_pass",
]
