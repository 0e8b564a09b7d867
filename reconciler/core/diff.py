"""Diff desired resources against a snapshot into a plan (pure).

Called by the runtime once per pass (or per tenant) after rendering and observing. Only tenants in ``scope``
are considered; tenants in ``protected`` (present in the database but invalid) get no change at all, so bad
input never costs a running tenant anything. Observed tenants that the database no longer knows are removed,
except their data volumes, which only ``tenants purge`` deletes.

Two containers in one slot are what a replacement leaves when the process died midway (``kill -9`` between
starting the new container and removing the old one): the new one matches the spec but was maybe never
verified, the old one may still be the one serving. Unless the new one is known to have served already (it is a
server in the tenant's observed route file and the old one is not: the crash came after the switch), the plan
does not pick by spec: it resumes the replacement (``-/+ OLD => NEW``, operation ``resume``), which the executor
carries out without creating NEW again: NEW must become ready before it is routed and OLD removed; if it never
does, NEW goes and OLD keeps serving.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, replace

from reconciler.core.plan import Action, Blocked, Change, Plan
from reconciler.core.resources import Container, DesiredTenant, Network, Snapshot
from reconciler.core.service_diff import diff_services
from reconciler.core.subnets import SubnetPoolExhausted, UsedSubnets, allocate_subnet

# Docker states in which a container comes back by itself: leave it alone.
_TRANSIENT_STATES = frozenset({"restarting"})


@dataclass(frozen=True)
class SubnetPool:
    pool: str = "10.213.0.0/16"
    prefixlen: int = 26


def _best(containers: Iterable[Container]) -> Container:
    return sorted(containers, key=lambda c: (not c.running, c.name))[0]


def _mib(size: int | None) -> str:
    return "none" if size is None else f"{size / 1024**2:g}MiB"


def _nano(cpus: float | None) -> int | None:
    return None if cpus is None else round(cpus * 1e9)


def limits_drift(desired: Container, observed: Container) -> list[str]:
    """Limits an inspected container has now that differ from its spec (``docker update`` keeps the labels).

    Only limits the spec sets are compared: ``docker update`` can set a limit back but not remove one, and an
    unset desired limit leaves the engine's default alone. Uninspected containers show no limits: no drift.
    """
    if not observed.inspected:
        return []
    drift = []
    if desired.memory is not None and observed.memory != desired.memory:
        drift.append(f"memory {_mib(observed.memory)} -> {_mib(desired.memory)}")
    if desired.cpus is not None and _nano(observed.cpus) != _nano(desired.cpus):
        drift.append(f"cpus {observed.cpus or 'none'} -> {desired.cpus:g}")
    if desired.pids_limit is not None and observed.pids_limit != desired.pids_limit:
        drift.append(f"pids limit {observed.pids_limit or 'none'} -> {desired.pids_limit}")
    return drift


def _limits_update(tenant: str, want: Container, have: Container) -> list[Change]:
    drift = limits_drift(want, have)
    if not drift:
        return []
    after = replace(have, memory=want.memory, cpus=want.cpus, pids_limit=want.pids_limit)
    reason = f"limits changed outside the reconciler: {', '.join(drift)}"
    return [Change(Action.UPDATE, "container", tenant, have.name, reason, before=have, after=after, operation="update")]


def _drift_reasons(desired: Container, observed: Container, network_missing: bool) -> list[str]:
    reasons = []
    if network_missing or desired.network not in observed.networks:
        reasons.append(f"not attached to network {desired.network}")
    if observed.spec_hash != desired.spec_hash:
        if observed.image != desired.image:
            reasons.append(f"image {observed.image} -> {desired.image}")
        else:
            reasons.append("spec changed (env, limits, port or health)")
    if observed.state == "dead":
        reasons.append("container is dead")
    if observed.running and observed.health_status == "unhealthy":
        # Docker reports a failing health check but never acts on it; a fresh container is the remedy.
        reasons.append("Docker health check reports unhealthy")
    return reasons


def _diff_network(
    tenant: DesiredTenant, observed: list[Network], pool: SubnetPool, used: UsedSubnets, absent_reason: str
) -> list[Change]:
    changes: list[Change] = []
    wanted = tenant.network
    if wanted is None:
        for net in observed:
            changes.append(
                Change(Action.DELETE, "network", tenant.tenant, net.name, absent_reason, before=net, operation="delete")
            )
        return changes
    if not any(net.name == wanted.name for net in observed):
        subnet = wanted.subnet or allocate_subnet(wanted.name, pool.pool, pool.prefixlen, used)
        used.add(subnet)
        changes.append(
            Change(
                Action.CREATE,
                "network",
                tenant.tenant,
                wanted.name,
                "network missing",
                after=replace(wanted, subnet=subnet),
            )
        )
    for net in observed:
        if net.name == wanted.name and net.router is False:
            # Swarm: the router (Traefik) was re-created and lost its attachments; its routes reach nothing.
            reason = "router not attached (re-created?)"
            changes.append(
                Change(
                    Action.UPDATE, "network", tenant.tenant, net.name, reason, before=net, after=net, operation="update"
                )
            )
    return changes


RESUME_REASON = "resume interrupted replacement"


def _interrupted(
    want: Container, found: list[Container], matching: list[Container], serving: frozenset[str]
) -> tuple[Change | None, list[Container]]:
    """The resumption of a replacement interrupted in this slot, and the slot's other extras (to delete).

    None when there is nothing to resume: no running container of an older spec beside the matching ones, or
    the new one already served while the old one did not (the old one is then a plain leftover).
    """
    new = _best(matching)
    older = [c for c in found if c not in matching and c.running]
    if not older:
        return None, [c for c in found if c is not new]
    # The one that served is the one to keep serving until the new one proves ready.
    old = sorted(older, key=lambda c: (c.name not in serving, c.name))[0]
    if new.name in serving and old.name not in serving:
        return None, [c for c in found if c is not new]
    # Observed containers do not report port and health path: the readiness probe needs the spec's.
    after = replace(new, port=want.port, health=want.health)
    change = Change(
        Action.REPLACE, "container", want.tenant, new.name, RESUME_REASON, before=old, after=after, operation="resume"
    )
    return change, [c for c in found if c is not new and c is not old]


def _diff_containers(
    tenant: DesiredTenant,
    observed: list[Container],
    network_missing: bool,
    absent_reason: str,
    serving: frozenset[str] = frozenset(),
) -> list[Change]:
    changes: list[Change] = []
    by_slot: dict[tuple[str, str, str, int], list[Container]] = defaultdict(list)
    for container in observed:
        # A container Docker is removing is already gone for planning: its replacement is created now (the
        # executor waits for the name to be free), not after the next event.
        if container.state != "removing":
            by_slot[container.slot].append(container)
    desired_slots = {c.slot for c in tenant.containers}
    replicas_wanted: dict[tuple[str, str], int] = defaultdict(int)
    for container in tenant.containers:
        replicas_wanted[(container.service, container.track)] += 1

    for want in tenant.containers:
        found = by_slot.get(want.slot, [])
        if want.state == "stopped":
            for have in found:
                if have.running:
                    changes.append(
                        Change(
                            Action.UPDATE,
                            "container",
                            tenant.tenant,
                            have.name,
                            "tenant stopped",
                            before=have,
                            after=replace(have, state="exited"),
                            operation="stop",
                        )
                    )
            continue
        matching = [c for c in found if not _drift_reasons(want, c, network_missing)]
        resumed, leftovers = _interrupted(want, found, matching, serving) if matching else (None, [])
        if resumed is not None:
            changes.append(resumed)
            extras = leftovers
        elif matching:
            keep = _best(matching)
            # Limits drift is healed in place (docker update): the container keeps serving, nothing else changes.
            changes.extend(_limits_update(tenant.tenant, want, keep))
            if keep.state not in _TRANSIENT_STATES and not keep.running:
                changes.append(
                    Change(
                        Action.UPDATE,
                        "container",
                        tenant.tenant,
                        keep.name,
                        f"container {keep.state}, expected running",
                        before=keep,
                        after=replace(keep, state="running", port=want.port, health=want.health),
                        operation="start",
                    )
                )
            extras = [c for c in found if c is not keep]
        elif found:
            old = _best(found)
            reasons = _drift_reasons(want, old, network_missing)
            changes.append(
                Change(
                    Action.REPLACE,
                    "container",
                    tenant.tenant,
                    want.name,
                    "; ".join(reasons),
                    before=old,
                    after=want,
                    operation="replace",
                )
            )
            extras = [c for c in found if c is not old]
        else:
            changes.append(
                Change(
                    Action.CREATE,
                    "container",
                    tenant.tenant,
                    want.name,
                    f"replica {want.replica} of {want.service}{f' track {want.track}' if want.track else ''} missing",
                    after=want,
                )
            )
            extras = []
        for extra in extras:
            changes.append(
                Change(
                    Action.DELETE,
                    "container",
                    tenant.tenant,
                    extra.name,
                    "duplicate of a replica (left over from an interrupted replacement)",
                    before=extra,
                    operation="delete",
                )
            )

    for slot, found in by_slot.items():
        if slot in desired_slots:
            continue
        _, service, track, replica = slot
        if tenant.state == "absent":
            reason = absent_reason
        elif not any(wanted == service for wanted, _ in replicas_wanted):
            reason = f"service {service} no longer configured"
        elif (service, track) not in replicas_wanted:
            reason = f"version track {track or '(first)'} of {service} no longer configured"
        else:
            reason = f"replica {replica} above desired count {replicas_wanted[(service, track)]}"
        for have in found:
            changes.append(
                Change(Action.DELETE, "container", tenant.tenant, have.name, reason, before=have, operation="delete")
            )
    return changes


def _diff_tenant(
    name: str,
    desired: Mapping[str, DesiredTenant],
    snapshot: Snapshot,
    pool: SubnetPool,
    used: UsedSubnets,
    serving: frozenset[str],
    services: bool = False,
) -> list[Change]:
    observed = snapshot.for_tenant(name)
    wanted = desired.get(name) or DesiredTenant(tenant=name, network=None, volume=None, containers=(), state="absent")
    absent_reason = "tenant absent" if name in desired else "tenant no longer in the database"
    changes = _diff_network(wanted, list(observed.networks), pool, used, absent_reason)
    network_missing = any(c.action is Action.CREATE for c in changes)
    if wanted.volume is not None and not any(v.name == wanted.volume.name for v in observed.volumes):
        changes.append(
            Change(Action.CREATE, "volume", name, wanted.volume.name, "data volume missing", after=wanted.volume)
        )
    if services:
        # The engine schedules the replicas: its tasks (observed containers) are its business, not the diff's.
        changes.extend(diff_services(name, wanted.services, observed.services, absent_reason))
    else:
        changes.extend(_diff_containers(wanted, list(observed.containers), network_missing, absent_reason, serving))
    return changes


def _converged_key(
    name: str, desired: Mapping[str, DesiredTenant], snapshot: Snapshot, serving: frozenset[str]
) -> tuple[object, ...]:
    observed = snapshot.for_tenant(name)
    wanted = desired.get(name)
    in_service = frozenset(c.name for c in observed.containers if c.name in serving)
    return (
        wanted,
        observed.networks,
        observed.volumes,
        observed.containers,
        observed.services,
        name in desired,
        in_service,
    )


def diff(
    desired: Mapping[str, DesiredTenant],
    snapshot: Snapshot,
    *,
    scope: Iterable[str] | None = None,
    protected: Iterable[str] = (),
    pool: SubnetPool | None = None,
    serving: frozenset[str] = frozenset(),
    converged: MutableMapping[str, tuple[object, ...]] | None = None,
    services: bool = False,
) -> Plan:
    """``serving``: names of the containers the observed route files route to (see ``_interrupted``).

    ``converged``: the caller's memo of tenants found to need no change, with every input of that finding (the
    desired tenant, its observed networks, volumes and containers by value, whether the database has it, which of
    its containers serve). A tenant whose inputs are all equal to the memo's gets no change without being diffed
    again: the same inputs give the same (empty) result, and an empty result used neither the subnet pool nor the
    subnets in use (they are read and changed only for a network to create, which is a change).

    ``services``: the engine schedules replicas itself (Swarm): desired and observed services are diffed
    (``core.service_diff``) instead of containers."""
    pool = pool or SubnetPool()
    protected_set = frozenset(protected)
    candidates = set(desired) | set(snapshot.tenants())
    tenants = sorted((candidates & set(scope)) if scope is not None else candidates)
    used = UsedSubnets(snapshot.used_subnets)
    changes: list[Change] = []
    blocked: list[Blocked] = []
    for name in tenants:
        if name in protected_set:
            continue
        key: tuple[object, ...] | None = None
        if converged is not None:
            key = _converged_key(name, desired, snapshot, serving)
            if converged.get(name) == key:
                continue
        try:
            found = _diff_tenant(name, desired, snapshot, pool, used, serving, services)
            changes.extend(found)
            if converged is not None:
                if found:
                    converged.pop(name, None)
                elif key is not None:
                    converged[name] = key
        except SubnetPoolExhausted as exc:
            blocked.append(Blocked(name, "network", "SubnetPoolExhausted", f"tenant {name!r}: {exc}"))
        except Exception as exc:  # one tenant's surprise never stops the others' plan
            blocked.append(
                Blocked(name, "container", "PlanFailed", f"tenant {name!r}: {type(exc).__name__}: {exc}"[:300])
            )
    return Plan.of(changes, blocked=tuple(blocked))
