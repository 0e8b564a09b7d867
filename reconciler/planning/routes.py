"""The route layer of a plan: each tenant's Traefik file as it will be after the plan's container changes.

The backends a route will have are those the executor will route to: running containers with an address that
the plan keeps, plus the containers it creates, replaces or starts (known only by name until they run: they get
a planned address, so the file's text is not known yet and the plan shows "new container NAME").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from desired_state.specs import TenantSpec
from reconciler.core.plan import Action, Change
from reconciler.core.resources import Container, Snapshot
from reconciler.core.route_diff import diff_route, planned_address
from reconciler.core.routes import RouteFile
from reconciler.planning.render_cache import RenderCache
from renderers.traefik import RouteNaming, render_file, render_routes, server_url


def planned_backends(observed: Sequence[Container], changes: Sequence[Change]) -> tuple[list[Container], bool]:
    """The containers the tenant's route will point at after ``changes``, and whether some are only planned."""
    leaving: set[str] = set()
    arriving: list[Container] = []
    for change in changes:
        if change.kind != "container":
            continue
        if change.action is Action.DELETE or change.operation == "stop":
            leaving.add(change.name)
        elif change.action in (Action.CREATE, Action.REPLACE) or change.operation == "start":
            new = change.after
            assert isinstance(new, Container)
            if isinstance(change.before, Container):
                leaving.add(change.before.name)
            if change.operation == "resume" and new.running and new.ip:
                # The new half of an interrupted replacement runs already: its address is known.
                arriving.append(new)
            else:
                arriving.append(replace(new, ip=planned_address(new.name), state="running"))
    arriving_names = {c.name for c in arriving}
    planned = any(c.ip == planned_address(c.name) for c in arriving)
    staying = [c for c in observed if c.running and c.ip and c.name not in leaving and c.name not in arriving_names]
    return sorted([*staying, *arriving], key=lambda c: c.name), planned


def desired_route(
    spec: TenantSpec, backends: Sequence[Container], planned: bool, *, naming: RouteNaming, entrypoint: str, owner: str
) -> RouteFile:
    rendered = render_routes(spec, backends, naming=naming, entrypoint=entrypoint)
    content = None if planned or rendered.empty else render_file(rendered, owner)
    return RouteFile(spec.name, naming.file(spec.name), rendered.table, content, owner)


def server_names(snapshot: Snapshot, ports: Mapping[tuple[str, str], int]) -> dict[str, str]:
    """Server URL → container name for the observed containers (ports by tenant and service)."""
    names: dict[str, str] = {}
    for c in snapshot.containers:
        port = ports.get((c.tenant, c.service), c.port)
        if c.ip:
            names[server_url(c.ip, port)] = c.name
    return names


def serving_containers(
    snapshot: Snapshot, routes: Mapping[str, RouteFile] | None, specs: Mapping[str, TenantSpec]
) -> frozenset[str]:
    """Names of the observed containers that the tenants' route files on disk list as servers (they served)."""
    names: set[str] = set()
    for tenant, file in (routes or {}).items():
        spec = specs.get(tenant)
        ports = {(tenant, s.name): s.port for s in spec.services} if spec is not None else {}
        listed = {url for service in file.table.services for url in service.servers}
        names |= {name for url, name in server_names(snapshot.for_tenant(tenant), ports).items() if url in listed}
    return frozenset(names)


def plan_route(
    tenant: str,
    spec: TenantSpec | None,
    snapshot: Snapshot,
    changes: Sequence[Change],
    observed: RouteFile | None,
    *,
    naming: RouteNaming,
    entrypoint: str,
    owner: str,
    absent_reason: str,
    cache: RenderCache | None = None,
) -> Change | None:
    """The route change of one tenant given its container changes (None: the file is already right)."""
    if observed is not None and observed.owner is None and spec is None:
        # A file with our name but not our header, of a tenant we do not know: not ours to remove.
        return None
    desired: RouteFile | None = None
    reason = absent_reason
    if spec is not None and spec.state == "running":
        backends, planned = planned_backends(snapshot.for_tenant(tenant).containers, changes)
        if cache is None:
            desired = desired_route(spec, backends, planned, naming=naming, entrypoint=entrypoint, owner=owner)
        else:
            # Named for the lambda (mypy keeps no narrowing inside it); it runs at once on a miss, never later.
            route_spec, route_backends = spec, backends
            desired = cache.route(
                route_spec,
                tuple(route_backends),
                planned,
                (naming, entrypoint, owner),
                lambda: desired_route(
                    route_spec, route_backends, planned, naming=naming, entrypoint=entrypoint, owner=owner
                ),
            )
        reason = "nothing of the tenant can be routed (no running backend or no exposed service)"
    elif spec is not None:
        reason = f"tenant {spec.state}"
    ports = {(tenant, s.name): s.port for s in spec.services} if spec is not None else {}
    names = server_names(snapshot.for_tenant(tenant), ports)
    return diff_route(tenant, desired, observed, names=names, reason=reason)
