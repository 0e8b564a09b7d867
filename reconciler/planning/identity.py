"""Whose data is this volume? The identity step of ``plan_pass``, before any layer is diffed (pure).

A tenant's data volume is named after the tenant, so a new tenant that reuses a name would mount the old
tenant's volume. Each data volume is bound to a tenant uid (``data_volumes``, else the volume's uid label). A
tenant is held, no change of any layer, with a ``Blocked`` entry its status shows as ``Data=False``, when:

- ``ForeignData``: its volume is bound to another uid (a former tenant of that name), until an operator runs
  ``reconciler tenants adopt NAME --yes`` or ``reconciler tenants purge NAME --yes``;
- ``DataVolumeLost``: its volume was bound (seen in Docker) and is gone, so it is not recreated empty without a
  word, until ``reconciler tenants recreate-volume NAME --yes``.

Otherwise the step says which bindings to write: ``pending`` for a volume the plan creates, ``bound`` for one
seen in Docker, and, once, a volume older than uids (no binding, no uid label) bound to the tenant of its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from desired_state.model import DesiredState, VolumeBinding
from reconciler.core.plan import Blocked
from reconciler.core.resources import Snapshot, Volume
from renderers.containers import Naming


@dataclass(frozen=True)
class IdentityCheck:
    held: dict[str, Blocked] = field(default_factory=dict)
    # What apply records in ``data_volumes`` (``reconciler plan`` writes nothing).
    bind: tuple[VolumeBinding, ...] = ()


def foreign_message(tenant: str, volume: str, owner_uid: str, uid: str | None) -> str:
    mine = f"uid {uid}" if uid else "a new uid"
    return (
        f"data volume {volume} belongs to uid {owner_uid}, a former tenant named {tenant!r}; this tenant ({mine}) is "
        f"held and nothing of it is created. Run `reconciler tenants adopt {tenant} --yes` to give it that data and "
        f"its backups, or `reconciler tenants purge {tenant} --yes` to delete the volume and start empty"
    )


def lost_message(tenant: str, binding: VolumeBinding) -> str:
    since = f" (bound since {binding.created_at:%Y-%m-%d %H:%M} UTC)" if binding.created_at else ""
    return (
        f"data volume {binding.volume}{since} is gone from Docker; the tenant is held so it is not recreated empty. "
        f"Run `reconciler tenants recreate-volume {tenant} --yes` to start on an empty volume, then "
        f"`reconciler restore {tenant} BACKUP_ID` to bring back a backup (`reconciler backups {tenant}`)"
    )


def _decide(
    tenant: str, uid: str | None, volume: str, binding: VolumeBinding | None, seen: Volume | None
) -> Blocked | VolumeBinding | None:
    owner_uid = binding.uid if binding is not None else (seen.uid if seen is not None else None)
    if owner_uid is not None and owner_uid != uid:
        return Blocked(tenant, "volume", "ForeignData", foreign_message(tenant, volume, owner_uid, uid))
    if binding is not None and binding.state == "bound" and seen is None:
        return Blocked(tenant, "volume", "DataVolumeLost", lost_message(tenant, binding))
    if uid is None or (binding is not None and binding.state == ("bound" if seen else "pending")):
        return None  # nothing to record (or, in a plan, nothing recorded before the uid is given)
    legacy = binding is None and seen is not None and seen.uid is None
    return VolumeBinding(volume, tenant, uid, "bound" if seen is not None else "pending", legacy=legacy)


def check_identities(
    desired: DesiredState,
    snapshot: Snapshot,
    bindings: Mapping[str, VolumeBinding],
    naming: Naming,
    skip: frozenset[str] = frozenset(),
) -> IdentityCheck:
    """Every valid tenant that keeps a data volume (running or stopped), except those in ``skip``."""
    held: dict[str, Blocked] = {}
    bind: list[VolumeBinding] = []
    volumes = {v.name: v for v in snapshot.volumes}
    for tenant, spec in sorted(desired.tenants.items()):
        if spec.state == "absent" or tenant in skip:
            continue
        volume = naming.volume(tenant)
        verdict = _decide(tenant, desired.uids.get(tenant), volume, bindings.get(volume), volumes.get(volume))
        if isinstance(verdict, Blocked):
            held[tenant] = verdict
        elif verdict is not None:
            bind.append(verdict)
    return IdentityCheck(held=held, bind=tuple(bind))
