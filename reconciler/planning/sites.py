"""``plan_sites``: desired sites vs the site files Nginx has → the sites' plan (pure).

Called by the sites stage of a pass (``reconciler.runtime.passes.sites_step``) for ``reconciler plan``, ``apply``
and every sweep of ``reconciler run``, and by the unit tests. Each site renders to one file
(``renderers.nginx.render_site``); the plan holds a change of kind ``site`` keyed ``site:<name>`` for every file
that is missing (``+``: a new site, or a file deleted by hand), differs (``~``: the spec changed, or the file was
edited by hand) or belongs to no site any more (``-``). Then the same policies as the tenants' plan: ownership
(a file of another owner is never touched) and the mass-delete guard over the layer "site files".

An invalid site gets no change (its file, if any, keeps serving) and a ``Blocked`` entry saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from desired_state.site_load import DesiredSites
from reconciler.core.plan import Action, Blocked, Change, Plan
from reconciler.core.policies import MassDeleteLimits, mass_delete_guard, ownership
from reconciler.core.sites import SITE_KEY, SiteFile
from renderers.nginx import NginxLayout, render_site


@dataclass(frozen=True)
class SitePlan:
    plan: Plan
    rendered: dict[str, SiteFile] = field(default_factory=dict)


def site_key(name: str) -> str:
    return f"{SITE_KEY}{name}"


def _change(name: str, before: SiteFile | None, after: SiteFile | None) -> Change | None:
    key = site_key(name)
    if after is None:
        if before is None:
            return None
        return Change(Action.DELETE, "site", key, before.file, "site no longer in the database", before, None, "delete")
    if before is None:
        return Change(Action.CREATE, "site", key, after.file, "site file missing", None, after, "create")
    if before.text == after.text:
        return None
    reason = "site file edited by hand" if before.edited else "site spec changed"
    return Change(Action.UPDATE, "site", key, after.file, reason, before, after, "update")


def owned_site_files(observed: Mapping[str, SiteFile], owner: str) -> int:
    return sum(1 for f in observed.values() if f.owner == owner)


def plan_sites(
    desired: DesiredSites,
    observed: Mapping[str, SiteFile],
    layout: NginxLayout,
    limits: MassDeleteLimits,
    *,
    allow_mass_delete: bool = False,
    recently: Mapping[str, int] | None = None,
    fpm: Mapping[str, str] | None = None,
) -> SitePlan:
    """``fpm``: site name → ip:port of its running PHP-FPM container (wordpress sites; one without an address is
    blocked with reason ``FpmNotRunning`` and its file, if any, keeps serving)."""
    changes: list[Change] = []
    blocked: list[Blocked] = []
    rendered: dict[str, SiteFile] = {}
    for name in sorted(set(desired.sites) | set(desired.errors) | set(observed)):
        if name in desired.errors:
            blocked.append(Blocked(site_key(name), "site", "Invalid", str(desired.errors[name])))
            continue
        spec = desired.sites.get(name)
        address = (fpm or {}).get(name)
        if spec is not None and spec.wordpress is not None and address is None:
            message = f"site {name!r}: waiting for its PHP-FPM container to run"
            blocked.append(Blocked(site_key(name), "site", "FpmNotRunning", message))
            continue
        try:
            after = render_site(spec, layout, address) if spec is not None else None
        except Exception as exc:  # one site's surprise is its own error
            blocked.append(Blocked(site_key(name), "site", "PlanFailed", f"site {name!r}: rendering failed: {exc}"))
            continue
        if after is not None:
            rendered[name] = after
        change = _change(name, observed.get(name), after)
        if change is not None:
            changes.append(change)
    plan = ownership(Plan.of(changes, blocked=tuple(blocked)), layout.owner)
    plan = mass_delete_guard(
        plan,
        {"site files": owned_site_files(observed, layout.owner)},
        limits,
        allow=allow_mass_delete,
        recently=recently,
    )
    return SitePlan(plan=plan, rendered=rendered)
