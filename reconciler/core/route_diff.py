"""Diff a tenant's desired Traefik file against the one on disk, router by router (pure).

Called by ``reconciler.planning`` once per tenant in scope. The result is at most one ``Change`` of kind
``route`` per tenant (one file per tenant), whose ``parts`` say which routers, services, servers and middlewares
are added, changed or removed, so the plan shows what a change does to routing before anything is written.

Servers of containers that the same plan creates have no address yet: the renderer is given them at a
``planned`` address (see ``planned_address``), and they read as "new container NAME" in the plan.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.plan import Action, Change, Part
from reconciler.core.routes import RouteFile, RouteMiddleware, RouteRouter, RouteService

PLANNED_PREFIX = "planned--"


def planned_address(container_name: str) -> str:
    """The stand-in address of a container that does not run yet (plan only; never written to a file)."""
    return f"{PLANNED_PREFIX}{container_name}"


def server_label(url: str, names: Mapping[str, str]) -> str:
    """A server URL as people read it: the container behind it when known."""
    host = url.split("//", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host.startswith(PLANNED_PREFIX):
        return f"new container {host.removeprefix(PLANNED_PREFIX)}"
    name = names.get(url)
    return f"{url} ({name})" if name else url


def _router_detail(have: RouteRouter | None, want: RouteRouter) -> str:
    if have is None:
        return want.rule
    changed = []
    if have.rule != want.rule:
        changed.append(f"rule {have.rule} -> {want.rule}")
    if have.service != want.service:
        changed.append(f"service {have.service} -> {want.service}")
    if have.middlewares != want.middlewares:
        changed.append(f"middlewares {', '.join(have.middlewares) or '-'} -> {', '.join(want.middlewares) or '-'}")
    if have.entry_points != want.entry_points:
        changed.append(f"entry points {', '.join(have.entry_points)} -> {', '.join(want.entry_points)}")
    return "; ".join(changed)


def _service_parts(have: RouteService | None, want: RouteService, names: Mapping[str, str]) -> list[Part]:
    parts: list[Part] = []
    if have is None:
        parts.append(Part(Action.CREATE, "service", want.name, want.kind))
    elif have.kind != want.kind or have.health != want.health or have.members != want.members:
        details = []
        if have.members != want.members:
            fmt = ", ".join(f"{n.rsplit('.', 1)[-1]}={w:g}" for n, w in want.members)
            details.append(f"weights {fmt or '-'}")
        if have.health != want.health:
            details.append(f"health {have.health} -> {want.health}")
        if have.kind != want.kind:
            details.append(f"{have.kind} -> {want.kind}")
        parts.append(Part(Action.UPDATE, "service", want.name, "; ".join(details)))
    old = set(have.servers) if have is not None else set()
    for url in sorted(set(want.servers) - old):
        parts.append(Part(Action.CREATE, "server", server_label(url, names), f"in {want.name}"))
    for url in sorted(old - set(want.servers)):
        parts.append(Part(Action.DELETE, "server", server_label(url, names), f"from {want.name}"))
    return parts


def _middleware_detail(mw: RouteMiddleware) -> str:
    if mw.kind == "ipAllowList":
        ranges = dict(mw.settings).get("sourceRange", "")
        count = len([r for r in ranges.split(",") if r])
        return f"ipAllowList, {count} range(s)"
    return mw.kind


def table_parts(observed: RouteFile | None, desired: RouteFile | None, names: Mapping[str, str]) -> list[Part]:
    """What changes inside the file, routers first (the order people read a route in)."""
    have_routers = {r.name: r for r in observed.table.routers} if observed else {}
    want_routers = {r.name: r for r in desired.table.routers} if desired else {}
    have_services = {s.name: s for s in observed.table.services} if observed else {}
    want_services = {s.name: s for s in desired.table.services} if desired else {}
    have_mws = {m.name: m for m in observed.table.middlewares} if observed else {}
    want_mws = {m.name: m for m in desired.table.middlewares} if desired else {}
    parts: list[Part] = []
    for name, want in sorted(want_routers.items()):
        have = have_routers.get(name)
        if have is None:
            parts.append(Part(Action.CREATE, "router", name, _router_detail(None, want)))
        elif not have.same_config(want):
            parts.append(Part(Action.UPDATE, "router", name, _router_detail(have, want)))
    parts.extend(
        Part(Action.DELETE, "router", name, r.rule)
        for name, r in sorted(have_routers.items())
        if name not in want_routers
    )
    for name, service in sorted(want_services.items()):
        if name not in have_services or not have_services[name].same_config(service):
            parts.extend(_service_parts(have_services.get(name), service, names))
    parts.extend(Part(Action.DELETE, "service", name) for name in sorted(have_services) if name not in want_services)
    for name, mw in sorted(want_mws.items()):
        if name not in have_mws:
            parts.append(Part(Action.CREATE, "middleware", name, _middleware_detail(mw)))
        elif not have_mws[name].same_config(mw):
            parts.append(Part(Action.UPDATE, "middleware", name, _middleware_detail(mw)))
    parts.extend(Part(Action.DELETE, "middleware", name) for name in sorted(have_mws) if name not in want_mws)
    return parts


def diff_route(
    tenant: str,
    desired: RouteFile | None,
    observed: RouteFile | None,
    *,
    names: Mapping[str, str],
    reason: str,
) -> Change | None:
    """The change that makes the tenant's file what the plan wants, or None.

    ``desired`` None or empty: the tenant should have no file (``reason`` says why: absent, stopped, nothing
    routable). ``names`` maps server URLs of running containers to container names, for the plan's text.
    """
    wanted = desired is not None and not desired.empty
    if observed is None:
        if not wanted:
            return None
        assert desired is not None
        parts = table_parts(None, desired, names)
        return Change(
            Action.CREATE, "route", tenant, desired.name, "route file missing", after=desired, parts=tuple(parts)
        )
    if not wanted:
        parts = table_parts(observed, None, names)
        return Change(
            Action.DELETE,
            "route",
            tenant,
            observed.name,
            reason,
            before=observed,
            operation="delete",
            parts=tuple(parts),
        )
    assert desired is not None
    if observed.unreadable:
        parts = [
            Part(Action.UPDATE, "file", observed.name, "not a valid dynamic configuration"),
            *table_parts(None, desired, names),
        ]
        return Change(
            Action.UPDATE,
            "route",
            tenant,
            desired.name,
            "route file unreadable (edited by hand)",
            before=observed,
            after=desired,
            operation="update",
            parts=tuple(parts),
        )
    parts = table_parts(observed, desired, names)
    if parts:
        why = _update_reason(parts)
        return Change(
            Action.UPDATE,
            "route",
            tenant,
            desired.name,
            why,
            before=observed,
            after=desired,
            operation="update",
            parts=tuple(parts),
        )
    if desired.content is not None and observed.content != desired.content:
        part = Part(Action.UPDATE, "file", observed.name, "content differs from what the reconciler writes")
        return Change(
            Action.UPDATE,
            "route",
            tenant,
            desired.name,
            "route file edited by hand",
            before=observed,
            after=desired,
            operation="update",
            parts=(part,),
        )
    return None


def _update_reason(parts: list[Part]) -> str:
    verbs = {Action.CREATE: "added", Action.DELETE: "removed", Action.UPDATE: "changed", Action.REPLACE: "replaced"}
    counts: dict[tuple[str, str], int] = {}
    for part in parts:
        key = (part.kind, verbs[part.action])
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {kind}{'s' if n > 1 else ''} {verb}" for (kind, verb), n in counts.items())
