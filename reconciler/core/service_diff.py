"""Diff desired Swarm services against observed ones (pure): the service layer of ``core.diff``.

Called by ``core.diff`` for tenants of an engine that schedules replicas itself (``PlanSettings.services``). Each
difference has a name in the change's reason, so ``reconciler plan`` says what a hand edit changed; an update
re-asserts the whole service spec, which Swarm rolls out start-first (``drivers.swarm``).
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.plan import Action, Change
from reconciler.core.services import Service


def _nano(cpus: float | None) -> int | None:
    return None if cpus is None else round(cpus * 1e9)


def service_drift(want: Service, have: Service) -> list[str]:
    """What differs between the spec and the Swarm service, by name (a hand edit shows here, not only a new spec).

    The observed values come from the service's full spec, which the list call returns: no inspection needed.
    """
    reasons = []
    if have.spec_hash != want.spec_hash:
        reasons.append("spec changed (env, limits, port, health or placement)")
    if have.image != want.image:
        reasons.append(f"image {have.image} -> {want.image}")
    if have.replicas != want.replicas:
        reasons.append(f"replicas {have.replicas} -> {want.replicas}")
    if have.memory != want.memory or _nano(have.cpus) != _nano(want.cpus):
        reasons.append("limits changed outside the reconciler")
    if have.env != want.env:
        reasons.append("environment changed outside the reconciler")
    if have.node != want.node:
        reasons.append(f"placement {have.node or 'any node'} -> {want.node or 'any node'}")
    if have.network != want.network or have.volume != want.volume:
        reasons.append("network or data mount changed outside the reconciler")
    return reasons + hardening_drift(want, have)


def hardening_drift(want: Service, have: Service) -> list[str]:
    """The operator's container defaults edited on the Swarm service by hand (checked only where they are set, as
    ``core.diff`` does for containers; no-new-privileges only where the manager reports it)."""
    reasons = []
    if want.pids_limit is not None and have.pids_limit != want.pids_limit:
        reasons.append(f"pids limit {have.pids_limit or 'none'} -> {want.pids_limit}")
    if want.log_max_size is not None:
        wanted = (want.log_max_size, want.log_max_file or 1)
        if (have.log_max_size, have.log_max_file) != wanted:
            seen = f"{have.log_max_size} x{have.log_max_file}" if have.log_max_size else "none"
            reasons.append(f"log rotation {seen} -> {wanted[0]} x{wanted[1]}")
    if want.no_new_privileges and have.no_new_privileges is False:
        reasons.append("no-new-privileges off -> on")
    return reasons


def diff_services(
    tenant: str, desired: tuple[Service, ...], observed: tuple[Service, ...], absent_reason: str
) -> list[Change]:
    """Create missing services, update drifted ones in place (Swarm rolls the tasks), delete extra ones."""
    changes: list[Change] = []
    have_by_name = {s.name: s for s in observed}
    for want in desired:
        have = have_by_name.get(want.name)
        if have is None:
            reason = f"service {want.service}{f' track {want.track}' if want.track else ''} missing"
            changes.append(Change(Action.CREATE, "service", tenant, want.name, reason, after=want))
            continue
        drift = service_drift(want, have)
        if drift:
            after = replace(want, id=have.id, version=have.version)
            changes.append(
                Change(
                    Action.UPDATE,
                    "service",
                    tenant,
                    want.name,
                    "; ".join(drift),
                    before=have,
                    after=after,
                    operation="update",
                )
            )
    wanted = {s.name for s in desired}
    for have in observed:
        if have.name not in wanted:
            reason = absent_reason if not desired else f"service {have.service} no longer configured"
            changes.append(Change(Action.DELETE, "service", tenant, have.name, reason, before=have, operation="delete"))
    return changes
